#include "atom/model/perplexity.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"
#include "atom/core/progress.h"

namespace atom {

PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows, bool progress) {
  KVCache cache(model.cfg, ctx);
  WindowModel wm;
  wm.hidden_size = model.cfg.hidden_size;
  wm.vocab_size = model.cfg.vocab_size;
  wm.forward_window = [&](const int32_t* t, int64_t n, float* hidden) {
    cache.clear();
    model.forward(t, n, cache, hidden);
  };
  wm.logits = [&](const float* h, int64_t n, float* out) { model.logits(h, n, out); };
  return evaluate_perplexity(wm, tokens, ctx, max_windows, progress);
}

PerplexityResult evaluate_perplexity(const WindowModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows, bool progress) {
  ATOM_CHECK(ctx >= 2, "perplexity: ctx must be >= 2, got {}", ctx);
  const int64_t total = int64_t(tokens.size()) / ctx;
  ATOM_CHECK(total > 0, "perplexity: the text has {} tokens, fewer than one window of {}", tokens.size(), ctx);
  const int64_t windows = max_windows > 0 ? std::min(max_windows, total) : total;
  const int64_t H = model.hidden_size, V = model.vocab_size;

  PerplexityResult r;
  r.ctx = ctx;
  r.total_windows = total;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> hidden(size_t(ctx * H));
  constexpr int64_t kChunk = 64;  // logits rows at a time: [64, vocab] instead of [ctx, vocab]
  std::vector<float> logits(size_t(kChunk * V));
  double nll = 0;
  ProgressBar bar("ppl", windows, progress);
  for (int64_t w = 0; w < windows; ++w) {
    const int32_t* win = tokens.data() + w * ctx;
    model.forward_window(win, ctx, hidden.data());
    for (int64_t r0 = 0; r0 < ctx - 1; r0 += kChunk) {
      const int64_t rows = std::min(kChunk, ctx - 1 - r0);
      model.logits(&hidden[size_t(r0 * H)], rows, logits.data());
#pragma omp parallel for reduction(+ : nll)
      for (int64_t i = 0; i < rows; ++i) {
        const float* li = &logits[size_t(i * V)];
        nll += cpu::logsumexp(li, V) - double(li[win[r0 + i + 1]]);
      }
    }
    r.predicted_tokens += ctx - 1;
    bar.tick(fmt::format("ppl {:.4f}", std::exp(nll / double(r.predicted_tokens))));
  }
  bar.finish();
  r.windows = windows;
  r.mean_nll = nll / double(r.predicted_tokens);
  r.ppl = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace atom
