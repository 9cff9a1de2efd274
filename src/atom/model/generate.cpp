#include "atom/model/generate.h"

#include <algorithm>
#include <chrono>

#include "atom/core/error.h"
#include "atom/model/text_stream.h"

namespace atom {

GenerateResult generate(const LlamaModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt, const std::function<bool(const std::string&)>& on_text) {
  ATOM_CHECK(!prompt.empty(), "generate: empty prompt");
  ATOM_CHECK(opt.max_tokens >= 0, "generate: max_tokens must be >= 0");
  const int64_t capacity = int64_t(prompt.size()) + opt.max_tokens;
  ATOM_CHECK(capacity <= model.cfg.max_position_embeddings,
             "generate: prompt ({}) + max_tokens ({}) exceeds the model context {}", prompt.size(), opt.max_tokens,
             model.cfg.max_position_embeddings);
  GenerateResult res;
  res.prompt_tokens = int64_t(prompt.size());
  res.finish_reason = "length";
  KVCache cache(model.cfg, std::max<int64_t>(capacity, 1));
  Sampler sampler(opt.sampling);
  StreamDecoder stream(tok);
  const int64_t H = model.cfg.hidden_size;
  std::vector<float> hidden(prompt.size() * size_t(H)), logits(size_t(model.cfg.vocab_size));

  auto t0 = std::chrono::steady_clock::now();
  model.forward(prompt.data(), int64_t(prompt.size()), cache, hidden.data());
  model.logits(&hidden[(prompt.size() - 1) * size_t(H)], 1, logits.data());
  auto t1 = std::chrono::steady_clock::now();
  res.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  const auto& stops = tok.stop_ids();
  StopStringStream text(tok, opt.stop_strings);
  for (int i = 0; i < opt.max_tokens; ++i) {
    const int32_t id = sampler.sample(logits.data(), model.cfg.vocab_size);
    if (opt.stop_at_eos && std::find(stops.begin(), stops.end(), id) != stops.end()) {
      res.finish_reason = "stop";
      break;
    }
    res.tokens.push_back(id);
    const std::string piece = text.push(id);
    bool stopped = text.stopped();
    if (on_text && !piece.empty() && !on_text(piece)) stopped = true;
    if (stopped) {
      res.finish_reason = "stop";
      break;
    }
    if (i + 1 == opt.max_tokens) break;
    std::vector<float> h(static_cast<size_t>(H));
    model.forward(&id, 1, cache, h.data());
    model.logits(h.data(), 1, logits.data());
  }
  const std::string tail = text.finish(/*flush_decoder=*/res.finish_reason == "length");
  if (on_text && !tail.empty()) on_text(tail);
  res.text = text.text();
  res.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return res;
}

}  // namespace atom
