// Calibration statistics for Atom: per linear input, each channel's sum of squares (the diagonal
// of XᵀX, which picks the outlier channels and the reorder), abs-max (SmoothQuant) and,
// when GPTQ or the clip search needs it, the full XᵀX.
#pragma once
#include <cstdint>
#include <vector>

#include "atom/model/llama.h"

namespace atom::quant {

// Linears that read the same activation share one reorder index (design brief §1):
// q/k/v read norm1(x), gate/up read norm2(x), o_proj and down_proj have their own.
enum class InputKind : int { QKV = 0, O, GateUp, Down };
constexpr int kNumInputKinds = 4;
InputKind input_kind(LinearSlot s);
const char* input_kind_name(InputKind k);

// `n_samples` windows of `seqlen` tokens at seeded random offsets (GPTQ's sampling). Windows
// may overlap when the text is short; throws if it is shorter than one window.
std::vector<std::vector<int32_t>> sample_windows(const std::vector<int32_t>& tokens, int n_samples, int seqlen,
                                                 uint64_t seed);

struct InputStats {
  int64_t k = 0;                // channels
  int64_t rows = 0;             // tokens seen
  std::vector<double> sumsq;    // Σ x²  per channel
  std::vector<float> absmax;    // max |x| per channel
  std::vector<double> xtx;      // Σ xᵀx [k, k] (only with_hessian): the upper triangle (a <= b) is accumulated
  bool with_hessian = false;
  bool xtx_mirrored = false;    // the lower triangle holds the mirror too (hessian() does it once)

  InputStats() = default;
  InputStats(int64_t channels, bool hessian);
  void add(const float* x, int64_t m);
  // GPTQ's H = 2·XᵀX / rows, with rows and columns permuted: H'[i,j] = H[perm[i], perm[j]]. Mirrors xtx's
  // upper triangle into the lower one first (once; add() must not be called after), so that every output
  // row gathers from one input row: reading the triangle alone was a random walk over k² doubles (1 GB
  // for an 11008-wide input, seconds per layer).
  std::vector<double> hessian(const std::vector<int32_t>& perm);
};

// Channels sorted by ascending sum of squares: perm[new] = old; the last ones are the outliers.
std::vector<int32_t> reorder_by_magnitude(const std::vector<double>& sumsq);

}  // namespace atom::quant
