// The Atom linear layer: W4A4 with an INT8 outlier tail, group quantization and channel reorder
// (docs/quant-format.md §3). For a linear y = x·Wᵀ with W [N, K]:
//
//   reorder   input channels are permuted by `perm` (perm[k_new] = k_old); the last n_outlier
//             reordered channels are the outliers (largest calibration second moment).
//   normal    K_n = K − n_outlier channels in groups of `group` consecutive reordered channels; the
//             last group may be ragged (K_n − (n_groups−1)·group channels).
//             W: INT4 [N, K_n] packed + scales [N, n_groups];  x: INT4 per (token, group), dynamic.
//   outliers  W: INT8 [N, n_outlier] + scale per output channel;  x: INT8 + scale per token, dynamic.
//             (outlier_bits = 16: both kept as fp16 values and multiplied in fp32 — the ablation.)
//
//   y[m,n] = Σ_g fp32(s_a[m,g]·s_w[n,g])·P[m,n,g] + fp32(s_ao[m]·s_wo[n])·P_o[m,n]
//   with exact int32 partial sums P (see int_gemm.h), groups in ascending order, outliers last.
//
// Scales follow quantize.h (fp16-valued, clip ratios applied to max|x| before the division).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atom/model/linear.h"
#include "atom/quant/int_gemm.h"

namespace atom::quant {

struct AtomConfig {
  int n_outlier = 128;        // 0 <= n_outlier < K
  int group = 128;            // <= 0, or >= K − n_outlier: one group per row (per-channel / per-token)
  float w_clip = 0.85f;       // INT4 weight groups
  float a_clip = 0.9f;        // INT4 activation groups
  float w_outlier_clip = 1.0f;
  float a_outlier_clip = 1.0f;
  int outlier_bits = 8;       // 8, or 16 = outliers kept in fp16
  int a_bits = 4;             // 4, or 16 = weight-only (activations stay fp32)
};

// Where each part lives along the reordered K axis.
struct AtomLayout {
  int64_t k = 0, n_outlier = 0, k_normal = 0, group = 0, n_groups = 0;
  bool int8_outliers = false;  // n_outlier > 0 and outlier_bits 8: the outlier arrays exist
  bool fp16_outliers = false;  // n_outlier > 0 and outlier_bits 16
  AtomLayout() = default;
  AtomLayout(int64_t k, const AtomConfig& cfg);  // validates the config against k
  int64_t group_begin(int64_t g) const { return g * group; }
  int64_t group_size(int64_t g) const { return k_normal - g * group < group ? k_normal - g * group : group; }
};

// The stored truth of a quantized layer (what the checkpoint holds). All scales are fp16-valued
// floats (float_to_fp16 converts them losslessly).
struct AtomWeights {
  int64_t out_features = 0, in_features = 0;
  AtomConfig config;
  std::vector<int32_t> perm;              // [K], perm[k_new] = k_old
  std::vector<uint8_t> w_int4;            // [N, int4_bytes(K_n)] row-major, int4.h nibble order
  std::vector<float> w_scale;             // [N, n_groups]
  std::vector<int8_t> w_outlier;          // [N, n_outlier]        (layout().int8_outliers, else empty)
  std::vector<float> w_outlier_scale;     // [N]                   (layout().int8_outliers, else empty)
  std::vector<float> w_outlier_fp16;      // [N, n_outlier] values (layout().fp16_outliers, else empty)

  AtomLayout layout() const { return AtomLayout(in_features, config); }
  void validate() const;  // throws atom::Error on inconsistent sizes, a bad perm or bad values
  // The weight the quantized layer multiplies by, [N, K] in the ORIGINAL column order.
  std::vector<float> dequantize() const;
};

// perm: see reorder_by_magnitude in calibrate.h (ascending Σx², so the outliers come last).

// Round-to-nearest quantization. `w` is [N, K] in the original column order.
AtomWeights atom_quantize_rtn(const float* w, int64_t n, int64_t k, std::vector<int32_t> perm,
                              const AtomConfig& cfg);
// Same, from a weight already in reordered column order (w_r[n, j] = W[n, perm[j]]).
AtomWeights atom_quantize_rtn_reordered(const float* w_r, int64_t n, int64_t k, std::vector<int32_t> perm,
                                        const AtomConfig& cfg);

// Quantized activations of m rows (reordered order), the input of forward_quantized().
struct AtomActivations {
  int64_t m = 0;
  std::vector<int8_t> q;             // [m, K]: K_n INT4 values, then n_outlier INT8 (0 when fp16)
  std::vector<float> scale;          // [m, G]: n_groups, +1 (the outlier scale, last) when INT8 outliers exist
  std::vector<float> outlier_fp16;   // [m, n_outlier] fp16 values (outlier_bits 16)
  std::vector<float> x_fp32;         // [m, K] reordered fp32 input (a_bits 16 only)
};

class AtomLinear final : public Linear {
 public:
  // RTN from an fp32 weight [out, in] in the original column order.
  AtomLinear(const float* w, int64_t out, int64_t in, std::vector<int32_t> perm, const AtomConfig& cfg);
  // From already-quantized parts (GPTQ output, checkpoint loading). Validates them.
  explicit AtomLinear(AtomWeights weights);

  void forward(const float* x, int64_t m, float* y) const override;
  std::string kind() const override { return "atom-w4a4"; }

  const AtomWeights& weights() const { return w_; }
  const AtomLayout& layout() const { return layout_; }
  const AtomConfig& config() const { return w_.config; }

  // The two halves of forward(), so several linears sharing one input (q/k/v, gate/up) can quantize
  // it once, like the fused norm+quantize kernel. x is in the original channel order.
  void quantize_input(const float* x, int64_t m, AtomActivations& act) const;
  void forward_quantized(const AtomActivations& act, float* y) const;
  // Exact integer partial sums P as int32 [m, N, G] with G = n_groups (+1: outliers when INT8),
  // computed by the same kernel as forward (a_bits 4 only). For tests.
  void partial_sums(const AtomActivations& act, std::vector<int32_t>& psums) const;

  // Kernel choice (default: best for this CPU). Not thread-safe against a concurrent forward.
  void set_isa(IntIsa isa) { isa_ = resolve_int_isa(isa); }

 private:
  void build();

  AtomWeights w_;
  AtomLayout layout_;
  bool identity_perm_ = false;
  IntGemmWeights gemm_;              // a_bits 4: INT4 groups (+ INT8 outlier group)
  std::vector<float> w_outlier_f_;   // outlier_bits 16: [N, n_outlier]
  std::vector<float> w_dense_;       // a_bits 16: dequantized reordered weight [N, K]
  IntIsa isa_ = IntIsa::Auto;
};

// Quantizes activation rows exactly as AtomLinear::quantize_input does (x in original order).
void atom_quantize_activations(const float* x, int64_t m, const std::vector<int32_t>& perm,
                               const AtomLayout& layout, const AtomConfig& cfg, AtomActivations& act);

// The formula computed literally, one element at a time, with int64 partial sums and double
// accumulation of the fp32 scale products — the reference the fast path is tested against.
// y: [m, N]; psums (optional): [m, N, G] as in AtomLinear::partial_sums.
void atom_linear_reference(const AtomWeights& w, const float* x, int64_t m, std::vector<double>& y,
                           std::vector<int64_t>* psums = nullptr);

}  // namespace atom::quant
