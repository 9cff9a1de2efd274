// The scalar rules of quantize.h on the device, bit for bit: sym_scale (fp16 scales saturating at 65504),
// sym_quant (IEEE division, round-half-even; weights: GPTQ) and sym_quant_recip (one FMA; activations: the
// fused quantizers and the calibration's fake quantization).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace atom::cuda::quant_rules {

// quantize.h's sym_scale: fp16(clip*amax/qmax), saturating at 65504, 0 for non-positive. h = the fp16.
__device__ __forceinline__ float sym_scale_fp16(float amax, float clip, float qmax, __half& h) {
  const float s = __fdiv_rn(__fmul_rn(clip, amax), qmax);
  if (!(s > 0.0f)) { h = __float2half_rn(0.0f); return 0.0f; }
  h = __float2half_rn(s);
  float r = __half2float(h);
  if (isinf(r)) { h = __float2half_rn(65504.0f); r = 65504.0f; }
  return r;
}

// quantize.h's sym_recip: fl(1/s), 0 for a zero scale (scales are >= 0: sym_scale_fp16's).
__device__ __forceinline__ float sym_recip(float s) { return s > 0.0f ? __frcp_rn(s) : 0.0f; }

// quantize.h's sym_quant: clamp(rint(x/s), qmin, qmax) in float, NaN -> 0, s == 0 -> 0.
__device__ __forceinline__ int sym_quant(float x, float s, float qmin, float qmax) {
  if (s == 0.0f) return 0;
  float r = rintf(__fdiv_rn(x, s));
  if (isnan(r)) return 0;
  r = fmaxf(r, qmin);
  r = fminf(r, qmax);
  return __float2int_rn(r);
}

// ---- quantize.h's activation rule (sym_quant_recip): q = clamp(rne(x * r), qmin, qmax), r = fl(1/s) ----
// fl(x * r + 1.5 * 2^23) rounds the exact product once, half to even (the sum's ulp is 1 for |x * r| < 2^22;
// larger products keep their sign and clamp), so one FMA per value replaces sym_quant's division, rint and
// conversion (MUFU and conversions issue at an eighth of the FMA rate on sm_90). The sum's bits are then
// kCodeBits + q + bias: the code is clamped and packed as an integer, with no conversion back.
template <int BITS>
struct ActCode {
  static constexpr int kQmin = BITS == 4 ? -8 : -127, kQmax = BITS == 4 ? 7 : 127;
  static constexpr int kBias = BITS == 4 ? 8 : 128;             // q + bias in [0, 2^BITS): the unsigned code
  static constexpr float kShift = 12582912.0f + float(kBias);   // 1.5 * 2^23 + bias, exact (bias is even)
  static constexpr uint32_t kCodeBits = 0x4B400000u;            // bits of 1.5 * 2^23
  static constexpr int kLoBits = int(kCodeBits) + kQmin + kBias, kHiBits = int(kCodeBits) + kQmax + kBias;
};

// One value by the scalar rule (NaN -> 0): the GPU calibration's fake quantization and the NaN segments.
__device__ __forceinline__ int sym_quant_recip(float x, float r, float qmin, float qmax) {
  float y = __fsub_rn(__fmaf_rn(x, r, 12582912.0f), 12582912.0f);
  if (isnan(y)) return 0;
  y = fmaxf(y, qmin);
  y = fminf(y, qmax);
  return __float2int_rn(y);
}

// Which bounds a segment's values can reach, from fl(amax * r) (an upper bound rounded monotonically, so
// fl < q + 0.5 proves the exact products are below q + 0.5): with clip 0.9 INT4 codes need only the upper
// clamp (7 / 0.9 = 7.8 < 8.5), a clip-1 INT8 tail neither (127 * (1 + 2^-11) < 127.5).
enum Clamp { kClampNone = 0, kClampHi = 1, kClampBoth = 2 };

template <int BITS, int CLAMP, int N>
__device__ __forceinline__ void act_code_bits_clamped(const float (&x)[N], float r, uint32_t (&b)[N]) {
  using Q = ActCode<BITS>;
#pragma unroll
  for (int e = 0; e < N; ++e) {
    int c = __float_as_int(__fmaf_rn(x[e], r, Q::kShift));  // signed: a product below -2^23 clamps low
    if constexpr (CLAMP >= kClampHi) c = min(c, Q::kHiBits);
    if constexpr (CLAMP == kClampBoth) c = max(c, Q::kLoBits);
    b[e] = uint32_t(c);
  }
}

// b[e] = kCodeBits + q[e] + bias, q[e] = sym_quant_recip(x[e], r), for a segment whose max |x| is amax (NaN
// when a value is NaN: those values then take the scalar rule, which gives them 0). The branch is uniform
// over a segment, and in practice over the kernel (the clip fixes the level).
template <int BITS, int N>
__device__ __forceinline__ void act_code_bits(const float (&x)[N], float amax, float r, uint32_t (&b)[N]) {
  using Q = ActCode<BITS>;
  const float top = __fmul_rn(amax, r);
  if (top < float(Q::kQmax) + 0.5f) {
    act_code_bits_clamped<BITS, kClampNone>(x, r, b);
  } else if (BITS == 4 && top < float(-Q::kQmin) + 0.5f) {
    act_code_bits_clamped<BITS, kClampHi>(x, r, b);
  } else if (!isnan(top)) {
    act_code_bits_clamped<BITS, kClampBoth>(x, r, b);
  } else {
#pragma unroll
    for (int e = 0; e < N; ++e)
      b[e] = Q::kCodeBits + uint32_t(sym_quant_recip(x[e], r, float(Q::kQmin), float(Q::kQmax)) + Q::kBias);
  }
}

// Packs N code-bit patterns (act_code_bits) into one 32-bit word, value e at bit BITS * e, as two's
// complement: one shift-add per value, then the constant part of the bits and the bias are taken out.
template <int BITS, int N>
__device__ __forceinline__ uint32_t pack_codes(const uint32_t (&b)[N]) {
  static_assert(N * BITS == 32, "one 32-bit word");
  constexpr uint32_t kCodeBits = ActCode<BITS>::kCodeBits, kBias = ActCode<BITS>::kBias;
  constexpr uint32_t kGarbage = [] {
    uint32_t g = 0;
    for (int e = 0; e < N; ++e) g += kCodeBits << (BITS * e);
    return g;
  }();
  constexpr uint32_t kSignFlip = [] {  // code = q + 2^(BITS-1): XOR with the top bit gives q's two's complement
    uint32_t f = 0;
    for (int e = 0; e < N; ++e) f |= kBias << (BITS * e);
    return f;
  }();
  uint32_t acc = b[0];
#pragma unroll
  for (int e = 1; e < N; ++e) acc += b[e] << (BITS * e);
  return (acc - kGarbage) ^ kSignFlip;
}

}  // namespace atom::cuda::quant_rules
