// KV-cache quantization: asymmetric INT4 (or INT8), one (scale, zero) per token per head
// (docs/quant-format.md §4). For one head's head_dim values x:
//   lo = min(min x, 0), hi = max(max x, 0)          (the range always contains 0, see below)
//   scale = fp16((hi - lo) / qmax)                    qmax = 15 (INT4) or 255 (INT8)
//   zero  = clamp(rint(-lo / scale), 0, qmax)         an integer, stored as uint8
//   q     = clamp(rint(x / scale) + zero, 0, qmax)
//   x̂     = (q - zero) · scale                         (fp32)
// scale == 0 (an all-zero head) -> zero = 0, q = 0, x̂ = 0.
// Why the range is widened to contain 0: with an integer zero point, zero = rint(-min/scale) lies in
// [0, qmax] only when min <= 0 <= max. A head whose values are all positive (or all negative) would
// otherwise clamp the zero point and lose the whole row; widening costs nothing on the usual
// mixed-sign heads (where lo/hi are the plain min/max) and keeps |x - x̂| <= scale/2 everywhere (up to
// the fp16 rounding of the scale: <= scale·(1/2 + qmax·2⁻¹¹)).
#pragma once
#include <cstdint>

namespace atom::quant {

struct KvHeadParams {
  float scale = 0.0f;  // fp16-representable
  uint8_t zero = 0;    // 0..qmax
};

// Parameters for one head of n values; bits 4 or 8.
KvHeadParams kv_head_params(const float* x, int64_t n, int bits);

// Quantizes one head with the given parameters: q[i] in 0..qmax.
void kv_quantize_head(const float* x, int64_t n, KvHeadParams p, int bits, uint8_t* q);

// x̂ = (q - zero)·scale.
inline float kv_dequant(uint8_t q, KvHeadParams p) { return float(int(q) - int(p.zero)) * p.scale; }

// In place: rounds each of the m rows [n_heads·head_dim] (row stride `stride` floats) through the
// format, so the fp32 CPU cache holds exactly what a kernel dequantizing on the fly would read.
void kv_fake_quant_rows(float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits);

// The stored layout (GPU cache / files): for m rows of n_heads·head_dim values,
//   packed [m, n_heads·head_dim/2] bytes (INT4: pack_uint4 order, element 2i low nibble), or
//          [m, n_heads·head_dim]   bytes (INT8),
//   scales [m, n_heads] (fp16-valued floats), zeros [m, n_heads] (uint8).
// head_dim must be even for INT4 (so heads start on byte boundaries).
void kv_quantize_rows(const float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits,
                      uint8_t* packed, float* scales, uint8_t* zeros);
void kv_dequantize_rows(const uint8_t* packed, const float* scales, const uint8_t* zeros, int64_t m,
                        int n_heads, int head_dim, int bits, float* rows, int64_t stride);

}  // namespace atom::quant
