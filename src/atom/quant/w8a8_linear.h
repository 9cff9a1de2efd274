// W8A8 baseline (SmoothQuant): per-channel INT8 weights × per-token INT8 activations, with
// per-input-channel smoothing factors moving activation outliers into the weights
// (docs/quant-format.md §5):
//   s_j  = max|X_j|^α / max|W_j|^(1−α)           (α = 0.5; calibration abs-max per input channel)
//   W'   = W·diag(s)  -> INT8 per output channel, scale fp16(max|W'_n|/127)
//   x'   = x / s      -> INT8 per token (dynamic),  scale fp16(max|x'_m|/127)
//   y    = fp32(s_x[m]·s_w[n]) · Σ_k qx·qw          (exact int32 sum)
// The division x/s is what folding 1/s into the preceding RMSNorm weight does on the GPU; here it is
// done explicitly in fp32 so the layer can replace any linear.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atom/model/linear.h"
#include "atom/quant/int_gemm.h"

namespace atom::quant {

struct W8A8Weights {
  int64_t out_features = 0, in_features = 0;
  std::vector<float> smooth;   // [K] s_j (empty: no smoothing)
  std::vector<int8_t> w_int8;  // [N, K] quantized W·diag(s)
  std::vector<float> w_scale;  // [N] fp16-valued
  void validate() const;
};

// max_n |W[n, j]| folded into out[j] (out[j] = max(out[j], ...)): call once per linear that shares
// the input (q/k/v, gate/up) so they get one common smoothing vector, as the fold requires.
void weight_column_absmax(const float* w, int64_t n, int64_t k, float* out);

// s_j = a_j^α / w_j^(1−α), with both maxima floored at 1e-5 (as SmoothQuant does) so dead channels
// get a finite factor.
std::vector<float> smoothquant_factors(const float* act_absmax, const float* w_col_absmax, int64_t k,
                                       float alpha = 0.5f);

// Quantizes W·diag(smooth) per output channel. smooth may be empty (plain per-channel INT8).
W8A8Weights w8a8_quantize(const float* w, int64_t n, int64_t k, std::vector<float> smooth);

class W8A8Linear final : public Linear {
 public:
  // act_absmax [in] may be null: no smoothing.
  W8A8Linear(const float* w, int64_t out, int64_t in, const float* act_absmax, float alpha = 0.5f);
  explicit W8A8Linear(W8A8Weights weights);

  void forward(const float* x, int64_t m, float* y) const override;
  std::string kind() const override { return "w8a8"; }
  const W8A8Weights& weights() const { return w_; }
  void set_isa(IntIsa isa) { isa_ = resolve_int_isa(isa); }

 private:
  W8A8Weights w_;
  IntGemmWeights gemm_;
  IntIsa isa_ = IntIsa::Auto;
};

// Per-token quantization of x/smooth: q [m, K], scales [m].
void w8a8_quantize_activations(const float* x, int64_t m, int64_t k, const std::vector<float>& smooth, int8_t* q,
                               float* scales);

// Literal reference: int64 sums, double accumulation.
void w8a8_linear_reference(const W8A8Weights& w, const float* x, int64_t m, std::vector<double>& y);

}  // namespace atom::quant
