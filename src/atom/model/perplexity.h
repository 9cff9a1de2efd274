// Perplexity with the GPTQ/Atom protocol: the whole text tokenized once, cut into
// non-overlapping windows of `ctx` tokens (the last partial window dropped), each window
// evaluated from an empty cache, NLL of tokens 1..ctx-1 of each window, ppl = exp(mean NLL).
#pragma once
#include <cstdint>
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

// max_windows <= 0: all windows. Throws if the text is shorter than one window.
PerplexityResult evaluate_perplexity(const LlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                     int64_t max_windows = 0, bool progress = true);

}  // namespace atom
