// The scalar rules of quantize.h (sym_scale, sym_quant) on the device, bit for bit: IEEE division,
// round-half-even, fp16 scales saturating at 65504. Shared by the fused activation quantizers and GPTQ.
#pragma once
#include <cuda_fp16.h>

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

// sym_quant for many values of one scale s, without a division per value: rint(x * fl(1/s)). x * fl(1/s) is
// within 1.5 ulp (|x/s| * 2^-22) of the IEEE quotient fl(x/s), so both round to the same integer unless x/s
// lies within |x/s| * 2^-21 of a half-integer; those values (and NaN, inf, overflow) take sym_quant's exact
// division. Bit-identical to sym_quant (tests/gpu/test_fused.cpp feeds it exact half-integer quotients).
struct SymQuantizer {
  float s, r;
  __device__ __forceinline__ explicit SymQuantizer(float scale) {
    s = scale;
    r = scale > 0.0f ? __fdiv_rn(1.0f, scale) : 0.0f;
  }

  // q[e] = sym_quant(x[e], s, qmin, qmax) for N values; one branch for the rare exact fix-ups.
  template <int N>
  __device__ __forceinline__ void quantize(const float (&x)[N], float qmin, float qmax, int (&q)[N]) const {
    bool ok[N], all_ok = true;
#pragma unroll
    for (int e = 0; e < N; ++e) {
      const float y = __fmul_rn(x[e], r), t = rintf(y);
      // |y - t| is exact; the bound's own rounding (2^-25 near 0.5) stays inside the 2x slack of 2^-21.
      ok[e] = fabsf(__fsub_rn(y, t)) < __fmaf_rn(fabsf(y), -0x1p-21f, 0.5f);
      q[e] = __float2int_rn(fminf(fmaxf(t, qmin), qmax));
      all_ok = all_ok && ok[e];
    }
    if (!all_ok) {
#pragma unroll
      for (int e = 0; e < N; ++e)
        if (!ok[e]) q[e] = sym_quant(x[e], s, qmin, qmax);
    }
  }
};

}  // namespace atom::cuda::quant_rules
