#include "atom/model/perplexity.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <memory>

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"
#include "atom/core/progress.h"

namespace atom {

WindowModel hidden_state_window_model(int64_t hidden_size, int64_t vocab_size,
                                      std::function<void(const int32_t*, int64_t, float*)> forward_window,
                                      std::function<void(const float*, int64_t, float*)> logits) {
  WindowModel wm;
  wm.vocab_size = vocab_size;
  wm.run_window = [=, hidden = std::vector<float>(), lg = std::vector<float>()](
                      const int32_t* t, int64_t n, const LogitsSink& sink) mutable {
    constexpr int64_t kChunk = 64;  // logits rows at a time: [64, vocab] instead of [ctx, vocab]
    hidden.resize(size_t(n * hidden_size));
    lg.resize(size_t(kChunk * vocab_size));
    forward_window(t, n, hidden.data());
    for (int64_t r0 = 0; r0 < n - 1; r0 += kChunk) {
      const int64_t rows = std::min(kChunk, n - 1 - r0);
      logits(&hidden[size_t(r0 * hidden_size)], rows, lg.data());
      sink(r0, rows, lg.data());
    }
  };
  return wm;
}

PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows, bool progress) {
  auto cache = std::make_shared<KVCache>(model.cfg, ctx);
  const WindowModel wm = hidden_state_window_model(
      model.cfg.hidden_size, model.cfg.vocab_size,
      [&model, cache](const int32_t* t, int64_t n, float* hidden) {
        cache->clear();
        model.forward(t, n, *cache, hidden);
      },
      [&model](const float* h, int64_t n, float* out) { model.logits(h, n, out); });
  return evaluate_perplexity(wm, tokens, ctx, max_windows, progress);
}

PerplexityResult evaluate_perplexity(const WindowModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows, bool progress) {
  ATOM_CHECK(ctx >= 2, "perplexity: ctx must be >= 2, got {}", ctx);
  const int64_t total = int64_t(tokens.size()) / ctx;
  ATOM_CHECK(total > 0, "perplexity: the text has {} tokens, fewer than one window of {}", tokens.size(), ctx);
  const int64_t windows = max_windows > 0 ? std::min(max_windows, total) : total;
  const int64_t V = model.vocab_size;

  PerplexityResult r;
  r.ctx = ctx;
  r.total_windows = total;
  auto t0 = std::chrono::steady_clock::now();
  double nll = 0;
  ProgressBar bar(model.label, windows, progress);
  for (int64_t w = 0; w < windows; ++w) {
    const int32_t* win = tokens.data() + w * ctx;
    model.run_window(win, ctx, [&](int64_t r0, int64_t rows, const float* logits) {
      rows = std::min(rows, ctx - 1 - r0);  // the last token has no next token to score
      double part = 0;
#pragma omp parallel for reduction(+ : part)
      for (int64_t i = 0; i < rows; ++i) {
        const float* li = &logits[size_t(i * V)];
        part += cpu::logsumexp(li, V) - double(li[win[r0 + i + 1]]);
      }
      nll += part;
    });
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
