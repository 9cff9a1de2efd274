// Perplexity with the GPTQ/Atom protocol: the whole text tokenized once, cut into
// non-overlapping windows of `ctx` tokens (the last partial window dropped), each window
// evaluated from an empty cache, NLL of tokens 1..ctx-1 of each window, ppl = exp(mean NLL).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "atom/model/llama.h"

namespace atom {

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t predicted_tokens = 0;
  int64_t windows = 0;
  int64_t total_windows = 0;  // windows the text holds
  int ctx = 0;
  double seconds = 0;
};

// What perplexity needs from a model, so every backend (CPU, tensor-parallel ranks, GPU) shares the
// protocol: run one window from an empty cache and hand its logits over in row blocks,
// sink(row0, rows, logits[rows, vocab]). Rows >= n-1 (no next token to score) may be skipped.
using LogitsSink = std::function<void(int64_t row0, int64_t rows, const float* logits)>;
struct WindowModel {
  int64_t vocab_size = 0;
  std::string label = "ppl";  // progress bar
  std::function<void(const int32_t* tokens, int64_t n, const LogitsSink& sink)> run_window;
};

// A WindowModel over a model that computes a window's hidden states [n, hidden] (fresh cache each
// call), then logits of hidden rows, 64 rows at a time.
WindowModel hidden_state_window_model(int64_t hidden_size, int64_t vocab_size,
                                      std::function<void(const int32_t*, int64_t, float*)> forward_window,
                                      std::function<void(const float*, int64_t, float*)> logits);

// max_windows <= 0: all windows. Throws if the text is shorter than one window.
PerplexityResult evaluate_perplexity(const WindowModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows = 0, bool progress = true);
// The CPU reference model.
PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows = 0, bool progress = true);

}  // namespace atom
