// GPTQ for the Atom layout, and the RTN clip search (docs/quant-format.md §6).
//
// Everything here works in the REORDERED column order: w_r[n, j] = W[n, perm[j]] and
// H_r[i, j] = H[perm[i], perm[j]] (permute_columns here; InputStats::hessian(perm) in calibrate.h).
//
// GPTQ (Frantar et al.), as Atom runs it: columns left to right, no act-order, damping 1% of the
// mean Hessian diagonal, lazy batch updates in blocks of 128 columns, U = chol(H⁻¹) upper. The
// per-column quantizer follows the Atom layout:
//   - normal column j in group g: INT4 with the group's scale, computed when the group's first
//     column is reached from the error-updated weights of the whole group (w_clip applied);
//   - outlier columns (the last n_outlier): they too receive the error feedback of every earlier
//     column; their per-output-channel INT8 scale is computed from the updated outlier block when
//     its first column is reached (w_outlier_clip), then they are rounded one by one with feedback
//     among themselves. (outlier_bits 16: rounded to fp16 instead.)
// Block boundaries are also placed at every group start and at the outlier start, so a scale is
// always computed from fully updated columns (the lazy update of the previous block has landed).
// Dead columns (H[j,j] == 0) get H[j,j] = 1 and W[:, j] = 0, as in GPTQ.
#pragma once
#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "atom/quant/atom_linear.h"

namespace atom::quant {

// H_r comes from calibration: InputStats::hessian(perm) in calibrate.h (2·XᵀX/rows, permuted).
std::vector<float> permute_columns(const float* w, int64_t n, int64_t k, const std::vector<int32_t>& perm);

struct GptqOptions {
  double damp = 0.01;   // fraction of mean(diag H) added to the diagonal
  int64_t block = 128;  // lazy-batch block width
};

struct GptqResult {
  AtomWeights weights;     // ready for AtomLinear(weights) (perm as passed in)
  double damp_used = 0;    // the absolute damping added (raised ×10 if Cholesky failed)
  double loss = 0;         // GPTQ's Σ (w − ŵ)² / U_jj² / 2
  int64_t dead_columns = 0;
};

// w_r [n, k] and h_r [k, k] in reordered order; perm maps reordered -> original columns.
GptqResult gptq_quantize_atom(const float* w_r, int64_t n, int64_t k, const double* h_r, std::vector<int32_t> perm,
                              const AtomConfig& cfg, const GptqOptions& opt = {});

// The host-side steps of GPTQ that the CPU reference and the GPU implementation (backend/cuda/gptq_gpu.h)
// share, so both validate, damp, cut and assemble the same way.
namespace gptq_detail {
struct PreparedHessian {
  std::vector<double> h;      // H_r with the dead-column rule applied (H[j, j] == 0 -> 1)
  std::vector<uint8_t> dead;  // [k]: 1 where the weight column is zeroed
  int64_t dead_columns = 0;
  double mean_diag = 0;       // of h
};
// Checks the sizes, options and finiteness of w_r / h_r (atom::Error otherwise) and applies the
// dead-column rule.
PreparedHessian prepare(const float* w_r, int64_t n, int64_t k, const double* h_r, const GptqOptions& opt);
// Damping: try_factor(damp) for opt.damp * mean_diag, then ×10 (or 1e-6 * mean_diag from 0) up to six
// more times; returns the damping that worked, throws if none did.
double damped_factor(const GptqOptions& opt, double mean_diag, const std::function<bool(double)>& try_factor);
// Column blocks [i1, i2): at most opt.block wide, also cut at every group start and at the outlier start,
// so a scale is always computed from fully updated columns.
std::vector<std::pair<int64_t, int64_t>> column_blocks(const AtomLayout& L, int64_t block);
// The AtomWeights of the row-major [n, ·] results (qn: INT4 values; qo / so: int8 outliers; fo: fp16
// outliers; the ones the layout has no use for are empty), validated.
AtomWeights assemble(int64_t n, int64_t k, const AtomConfig& cfg, std::vector<int32_t> perm, const std::vector<int8_t>& qn,
                     std::vector<float> scales, std::vector<int8_t> qo, std::vector<float> so, std::vector<float> fo);
}  // namespace gptq_detail

// tr(ΔW·H·ΔWᵀ) with ΔW = w_r − dequant(q) (reordered), i.e. (2/n)·||X·ΔWᵀ||²_F for the calibration X:
// the layer-output error the quantized weights cause.
double weight_error_proxy(const float* w_r, const AtomWeights& q, const double* h_r);

// The weight's dequantized values in reordered column order [n, k].
std::vector<float> dequantize_reordered(const AtomWeights& q);

struct ClipSearchResult {
  float best_clip = 1.0f;
  std::vector<float> grid;
  std::vector<double> error;  // weight_error_proxy per grid point
};

// RTN clip search: the w_clip (INT4 groups) from `grid` minimizing weight_error_proxy.
ClipSearchResult search_weight_clip(const float* w_r, int64_t n, int64_t k, const double* h_r,
                                    const std::vector<int32_t>& perm, const AtomConfig& cfg,
                                    std::vector<float> grid = {1.0f, 0.95f, 0.9f, 0.85f, 0.8f, 0.75f});

}  // namespace atom::quant
