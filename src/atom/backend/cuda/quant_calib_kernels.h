// Kernels of the GPU quantization backend (quant_backend_gpu.h): the fp32 decoder-block forward of the
// calibration passes, the quantized linears' activation rounding, and the calibration statistics.
// Each mirrors one CPU reference function, named next to it. Row-major, fp32 unless stated.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace atom::cuda::calib {

// cpu::rmsnorm: y = w * (x * r), r = 1 / sqrt(float(Σx² (double) / n) + eps). y may alias x.
void rmsnorm(const float* x, const float* w, float* y, int64_t m, int64_t n, float eps, cudaStream_t s);
// rope_apply on rows [m, n_heads·head_dim] (row stride `stride`) at positions pos0 + row.
void rope(float* x, int64_t m, int64_t stride, int n_heads, int head_dim, const float* inv_freq, int64_t pos0,
          cudaStream_t s);
// cpu::silu_mul: out = g / (1 + exp(-g)) * up (out may alias gate).
void silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s);
// The softmax of cpu::attention_causal (pos0 = 0): row i of each of n_heads [T, T] score matrices
// (already scaled) becomes softmax(row[0..i]) (double sum), zero after i.
void causal_softmax(float* scores, int n_heads, int64_t T, cudaStream_t s);
// quant::kv_fake_quant_rows: each head of each row rounded through the asymmetric KV format (bits 4 / 8).
void kv_fake_quant(float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits, cudaStream_t s);

// AtomLinear's activation quantization (atom_quantize_activations), written back as the values the
// integer GEMM multiplies: out[r, perm[j]] = q·s (INT4 groups, INT8 outlier tail with its per-token
// scale) or fp16(x) for fp16 outliers, in the ORIGINAL channel order, so out · W_deqᵀ (W_deq =
// AtomWeights::dequantize()) is the layer's output up to fp32 summation order.
struct AtomActQuant {
  const int32_t* perm = nullptr;  // [k] device
  int64_t k = 0, k_normal = 0, group = 0, n_groups = 0, n_outlier = 0;
  bool int8_outliers = false;     // else (n_outlier > 0) fp16 outliers
  float a_clip = 1.0f, a_outlier_clip = 1.0f;
};
// x [m, k] with row stride ldx; out [m, k] dense.
void atom_act_fake_quant(const float* x, int64_t ldx, int64_t m, const AtomActQuant& a, float* out, cudaStream_t s);
// W8A8Linear's (w8a8_quantize_activations): x' = x / smooth (smooth may be null), per-token INT8,
// out = q·s_x.
void w8a8_act_fake_quant(const float* x, int64_t ldx, int64_t m, int64_t k, const float* smooth, float* out,
                         cudaStream_t s);

// InputStats::add's per-channel parts over x [m, k]: sumsq[j] += Σ x² (double), absmax[j] = max(absmax, |x|)
// (NaN ignored; absmax as float bits, non-negative so integer max orders them).
void column_stats(const float* x, int64_t m, int64_t k, double* sumsq, unsigned* absmax_bits, cudaStream_t s);
// acc[a·k + b] += part[a·k + b] for b >= a (the row-major upper triangle InputStats::xtx keeps).
void accumulate_upper(double* acc, const float* part, int64_t k, cudaStream_t s);

}  // namespace atom::cuda::calib
