#include "atom/model/generate.h"

#include <algorithm>
#include <chrono>

#include "atom/core/error.h"

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
  size_t emitted = 0;  // bytes of res.text already handed to on_text
  for (int i = 0; i < opt.max_tokens; ++i) {
    const int32_t id = sampler.sample(logits.data(), model.cfg.vocab_size);
    if (opt.stop_at_eos && std::find(stops.begin(), stops.end(), id) != stops.end()) {
      res.finish_reason = "stop";
      break;
    }
    res.tokens.push_back(id);
    res.text += stream.push(id);
    // Stop strings: cut the text at the first match and end.
    bool stopped = false;
    for (const std::string& s : opt.stop_strings) {
      const size_t at = s.empty() ? std::string::npos : res.text.find(s);
      if (at != std::string::npos) {
        res.text.resize(at);
        stopped = true;
      }
    }
    // Hold back a tail that could still become a stop string.
    size_t safe = res.text.size();
    if (!stopped)
      for (const std::string& s : opt.stop_strings)
        for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), res.text.size()); k > 0; --k)
          if (res.text.compare(res.text.size() - k, k, s, 0, k) == 0) {
            safe = std::min(safe, res.text.size() - k);
            break;
          }
    if (on_text && safe > emitted) {
      if (!on_text(res.text.substr(emitted, safe - emitted))) stopped = true;
      emitted = safe;
    }
    if (stopped) {
      res.finish_reason = "stop";
      break;
    }
    if (i + 1 == opt.max_tokens) break;
    std::vector<float> h(static_cast<size_t>(H));
    model.forward(&id, 1, cache, h.data());
    model.logits(h.data(), 1, logits.data());
  }
  if (res.finish_reason == "length") res.text += stream.flush();
  if (on_text && res.text.size() > emitted) on_text(res.text.substr(emitted));
  res.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return res;
}

}  // namespace atom
