// The paged KV cache's per-(token, head) asymmetric quantizer on one warp (each lane holds some of the
// head's values): the exact arithmetic of atom::quant::kv_head_params / kv_quantize_head (the range is
// widened to contain 0, scale = fp16((hi - lo) / qmax) saturated at 65504, zero = clamp(rint(-lo / scale)),
// q = clamp(rint(x / scale) + zero); IEEE divisions), so GPU writes are bit-exact with the CPU reference.
// Shared by the fp16 append (paged_kv.cu) and the fp32 RoPE + append (rope_kv_f32.cu).
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "atom/backend/cuda/paged_kv_layout.h"

namespace atom::cuda::kvq {

struct Params {
  float scale, zero;
};

// lo / hi: this lane's minimum / maximum, each started from 0. Every lane gets the head's parameters.
template <int QMAX>
__device__ __forceinline__ Params warp_params(float lo, float hi) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    lo = fminf(lo, __shfl_xor_sync(0xffffffffu, lo, o));
    hi = fmaxf(hi, __shfl_xor_sync(0xffffffffu, hi, o));
  }
  float scale = __fdiv_rn(hi - lo, float(QMAX));
  if (!(scale > 0.0f)) {
    scale = 0.0f;
  } else {
    scale = __half2float(__float2half_rn(scale));
    if (isinf(scale)) scale = 65504.0f;
  }
  const float zero = scale > 0.0f ? fminf(fmaxf(rintf(__fdiv_rn(-lo, scale)), 0.0f), float(QMAX)) : 0.0f;
  return {scale, zero};
}

template <int QMAX>
__device__ __forceinline__ uint32_t quantize(float x, Params p) {
  const float r = p.scale > 0.0f ? rintf(__fdiv_rn(x, p.scale)) + p.zero : 0.0f;
  return uint32_t(fminf(fmaxf(r, 0.0f), float(QMAX)));
}

// The token's scale (fp16) and zero point at offset `off` of the K (is_v false) or V half of block `blk`.
__device__ __forceinline__ void store_params(uint8_t* blk, const PagedKvLayout& L, bool is_v, int off, Params p) {
  *reinterpret_cast<__half*>(blk + (is_v ? L.v_scales() : L.k_scales()) + 2 * off) = __float2half_rn(p.scale);
  blk[(is_v ? L.v_zeros() : L.k_zeros()) + off] = uint8_t(p.zero);
}

}  // namespace atom::cuda::kvq
