// The scalar rules of quantize.h (sym_scale, sym_quant) on the device, bit for bit: IEEE division,
// round-half-even, fp16 scales saturating at 65504. Shared by the fused activation quantizers and GPTQ.
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

// quantize.h's sym_quant: clamp(rint(x/s), qmin, qmax) in float, NaN -> 0, s == 0 -> 0.
__device__ __forceinline__ int sym_quant(float x, float s, float qmin, float qmax) {
  if (s == 0.0f) return 0;
  float r = rintf(__fdiv_rn(x, s));
  if (isnan(r)) return 0;
  r = fmaxf(r, qmin);
  r = fminf(r, qmax);
  return __float2int_rn(r);
}

}  // namespace atom::cuda::quant_rules

namespace atom::cuda::quant_rules {

// ---- sym_quant for many values of one scale, without a division or a conversion per value ----
// sm_90 issues MUFU and every float<->int/half conversion at 16 per clock per SM, an eighth of the FMA rate;
// sym_quant spends three of them per value (the division's reciprocal, rint, f2i), which made the fused
// quantizers conversion-bound. Here, per value: y = x * fl(1/s) (within 1.5 ulp, |x/s| * 2^-22, of the IEEE
// quotient fl(x/s), so both round alike unless x/s lies within |x/s| * 2^-21 of a half-integer), clamped to
// [qmin, qmax] with NaN kept, and rounded half-to-even by adding 1.5 * 2^23 + bias (exact for |y| < 2^22):
// the float's bits are then 0x4B400000 + q + bias. A value that is NaN or lies within tol of a half-integer
// makes the caller redo the row piece with sym_quant (rare: |y| <= qmax, so tol's slack is qmax * 2^-21).
// A clamped value is an integer, and clamping commutes with rounding, so it never needs the fall-back.
template <int BITS>
struct FastQuant {
  static constexpr float kQmin = BITS == 4 ? -8.0f : -127.0f;
  static constexpr float kQmax = BITS == 4 ? 7.0f : 127.0f;
  static constexpr uint32_t kBias = BITS == 4 ? 8u : 128u;  // q + bias in [0, 2^BITS): the unsigned code
  static constexpr float kShift = 12582912.0f + float(kBias);  // 1.5 * 2^23 + bias, exact
  static constexpr float kTol = 0.5f - (BITS == 4 ? 8.0f : 127.0f) * 0x1p-21f;
  static constexpr uint32_t kCodeBits = 0x4B400000u;  // bits of 1.5 * 2^23: float bits = kCodeBits + code
};

__device__ __forceinline__ float max_nan(float a, float b) {
  float d;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}
__device__ __forceinline__ float min_nan(float a, float b) {
  float d;
  asm("min.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}

// One value's code bits by the fast rule; ok = false when it needs sym_quant's exact division.
template <int BITS>
__device__ __forceinline__ uint32_t sym_code_bits_fast1(float x, float r, bool& ok) {
  using Q = FastQuant<BITS>;
  const float y = min_nan(max_nan(__fmul_rn(x, r), Q::kQmin), Q::kQmax);
  const float shifted = __fadd_rn(y, Q::kShift);
  ok = fabsf(__fsub_rn(y, __fsub_rn(shifted, Q::kShift))) < Q::kTol;  // false for NaN
  return __float_as_uint(shifted);
}

// b[e] = kCodeBits + q[e] + kBias with q[e] = sym_quant(x[e], s, qmin, qmax), r = fl(1/s) (0 when s == 0).
// The exact division runs only for the values that need it, behind one branch: with fp16 inputs and fp16
// scales, quotients exactly on a half-integer are common (~1 value in 2,500), and redoing all N values
// made the fall-back half of the kernel's instructions.
template <int BITS, int N>
__device__ __forceinline__ void sym_code_bits(const float (&x)[N], float s, float r, uint32_t (&b)[N]) {
  using Q = FastQuant<BITS>;
  bool all_ok = true;
#pragma unroll
  for (int e = 0; e < N; ++e) {
    bool ok;
    b[e] = sym_code_bits_fast1<BITS>(x[e], r, ok);
    all_ok &= ok;
  }
  if (!all_ok) {
#pragma unroll
    for (int e = 0; e < N; ++e) {
      bool ok;
      (void)sym_code_bits_fast1<BITS>(x[e], r, ok);  // recomputed here: cheaper than keeping N flags live
      if (!ok) b[e] = Q::kCodeBits + uint32_t(sym_quant(x[e], s, Q::kQmin, Q::kQmax) + int(Q::kBias));
    }
  }
}

// Packs N code-bit patterns (sym_code_bits) into one 32-bit word, value e at bit BITS * e, as two's
// complement: one shift-add per value, then the constant part of the bits and the bias are taken out.
template <int BITS, int N>
__device__ __forceinline__ uint32_t pack_codes(const uint32_t (&b)[N]) {
  static_assert(N * BITS == 32, "one 32-bit word");
  constexpr uint32_t kCodeBits = FastQuant<BITS>::kCodeBits, kBias = FastQuant<BITS>::kBias;
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
