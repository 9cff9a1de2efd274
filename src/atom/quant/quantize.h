// Scalar quantization primitives (docs/quant-format.md §2). Every quantized format in Atom is built
// from these, and every fast path (CPU SIMD, CUDA) must produce bit-identical integers and scales:
//   scale  s = fp16( clip · max|x| / qmax )      qmax = 7 (INT4) or 127 (INT8), fp32 arithmetic,
//                                                 fp16 = round-to-nearest-even, saturating at 65504
//   value  q = clamp( rint(x / s), qmin, qmax )  qmin = -8 (INT4) or -127 (INT8); IEEE fp32
//                                                 division, rint = round half to even (weights)
//          q = clamp( rne(x · fl(1/s)), qmin, qmax )  activations: fl(1/s) the IEEE fp32 reciprocal, the
//                                                 product exact, rounded once (one FMA per value on a GPU)
//   s == 0 (all-zero segment, or fp16 underflow) -> every q = 0; nothing divides by zero.
// Rounding the scale to fp16 *before* quantizing means a kernel that stores fp16 scales reproduces
// the integers exactly; products of two scales are taken in fp32 (exact for two fp16 values).
#pragma once
#include <cmath>
#include <cstdint>

#include "atom/core/half.h"

namespace atom::quant {

inline constexpr float kFp16Max = 65504.0f;

// Rounds a non-negative scale to the nearest fp16 value; inf saturates to 65504, NaN/negative -> 0.
inline float fp16_round_scale(float s) {
  if (!(s > 0.0f)) return 0.0f;
  const float r = fp16_to_float(float_to_fp16(s));
  return std::isinf(r) ? kFp16Max : r;
}

// Any value rounded through fp16 (for the "kept in fp16" parts: outliers in the ablation, etc.).
inline float fp16_round(float x) { return fp16_to_float(float_to_fp16(x)); }

constexpr int sym_qmax(int bits) { return bits == 4 ? 7 : 127; }
constexpr int sym_qmin(int bits) { return bits == 4 ? -8 : -127; }

// max |x| over n values (NaN ignored; 0 for n == 0).
inline float absmax(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::fabs(x[i]) > m ? std::fabs(x[i]) : m;
  return m;
}

// s = fp16(clip·amax/qmax), the one rule for every symmetric scale.
inline float sym_scale(float amax, float clip, int bits) {
  return fp16_round_scale((clip * amax) / float(sym_qmax(bits)));
}

// One value: clamp(rint(x/s), qmin, qmax); 0 when s == 0. Clamping happens in float, before the
// integer conversion, so inf saturates and NaN gives 0 (as cvt.rni does on a GPU) instead of UB.
inline int8_t sym_quant(float x, float s, int bits) {
  if (s == 0.0f) return 0;
  float r = std::nearbyint(x / s);
  if (std::isnan(r)) return 0;
  r = std::fmax(r, float(sym_qmin(bits)));
  r = std::fmin(r, float(sym_qmax(bits)));
  return int8_t(r);
}

// Activations are quantized online, on every token, by the fused GPU kernels: their values take one
// multiply by the reciprocal of the scale instead of a division (docs/quant-format.md §2). The product
// x·r of two fp32 values is exact in double, so rounding it once is what an FMA with the 1.5·2^23 shift
// does on a GPU. Weights keep the division (quantized offline; GPTQ's rule).
enum class Rounding { kDivide, kReciprocal };

// fl(1/s), the IEEE fp32 reciprocal; 0 for s == 0 (then every q is 0, as with the division rule).
inline float sym_recip(float s) { return s == 0.0f ? 0.0f : 1.0f / s; }

// One activation value: clamp(rne(x·r), qmin, qmax) with the product exact; NaN (also inf·0) gives 0.
inline int8_t sym_quant_recip(float x, float r, int bits) {
  double y = std::nearbyint(double(x) * double(r));
  if (std::isnan(y)) return 0;
  y = std::fmax(y, double(sym_qmin(bits)));
  y = std::fmin(y, double(sym_qmax(bits)));
  return int8_t(y);
}

// Quantizes x[0..n) with one scale (returned); bits 4 or 8.
float quantize_sym_segment(const float* x, int64_t n, int bits, float clip, int8_t* q,
                           Rounding rounding = Rounding::kDivide);

// Quantizes a row of n values in groups of `group` consecutive values (the last group may be
// ragged: n - (n_groups-1)·group values). scales[0..ceil(n/group)).
void quantize_sym_groups(const float* x, int64_t n, int64_t group, int bits, float clip, int8_t* q,
                         float* scales, Rounding rounding = Rounding::kDivide);

// Symmetric INT8 per row: x[rows, cols] -> q[rows, cols], scales[rows] (per token / per channel).
void quantize_rows_int8(const float* x, int64_t rows, int64_t cols, float clip, int8_t* q, float* scales);

// Number of groups of a row of n values: ceil(n/group); 0 for n == 0.
constexpr int64_t num_groups(int64_t n, int64_t group) { return n == 0 ? 0 : (n + group - 1) / group; }

}  // namespace atom::quant
