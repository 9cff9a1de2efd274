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

}  // namespace atom::cuda::quant_rules
