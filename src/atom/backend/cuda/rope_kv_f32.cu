#include <cuda_fp16.h>

#include "atom/backend/cuda/rope_kv_f32.h"

#include "atom/backend/cuda/kv_quant.cuh"

namespace atom::cuda {
namespace {

constexpr int kWarps = 4;

// One warp per (token, unit): unit < nh is a q head, then the nkv K heads, then the nkv V heads. Lane l
// holds elements l + 32e (e < E = D/32), so a RoPE pair (i, i + D/2) sits in one lane (e, e + E/2).
template <KvDtype DT, int D>
__global__ void __launch_bounds__(kWarps * 32) rope_kv_f32_kernel(PagedKvLayout L, uint8_t* __restrict__ pool,
                                                                  int layer, const float* __restrict__ qkv,
                                                                  const int32_t* __restrict__ pos,
                                                                  const float* __restrict__ inv_freq, int nh,
                                                                  __half* __restrict__ q16,
                                                                  const int32_t* __restrict__ slots) {
  constexpr int E = D / 32, HE = E / 2;
  const int64_t t = blockIdx.x;
  const int nkv = L.n_kv_heads, units = nh + 2 * nkv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float* row = qkv + t * int64_t(units) * D;
  const float p = float(pos[t]);
  const int32_t slot = slots[t];
  for (int u = warp; u < units; u += kWarps) {
    float x[E];
#pragma unroll
    for (int e = 0; e < E; ++e) x[e] = row[int64_t(u) * D + lane + 32 * e];
    if (u < nh + nkv) {  // q or K head: rotate (same fp32 arithmetic as rope_split / model/rope.cpp)
#pragma unroll
      for (int e = 0; e < HE; ++e) {
        float sn, cs;
        sincosf(__fmul_rn(p, inv_freq[lane + 32 * e]), &sn, &cs);
        const float a = x[e], b = x[e + HE];
        x[e] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
        x[e + HE] = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
      }
    }
    if (u < nh) {
#pragma unroll
      for (int e = 0; e < E; ++e) q16[(t * nh + u) * D + lane + 32 * e] = __float2half_rn(x[e]);
      continue;
    }
    if (slot < 0) continue;
    const bool is_v = u >= nh + nkv;
    const int head = u - nh - (is_v ? nkv : 0);
    const int64_t page = slot / L.page_size;
    const int off = slot % L.page_size;
    uint8_t* blk = pool + L.block_offset(layer, page, head);
    uint8_t* dst = blk + (is_v ? L.v_values() : L.k_values()) + off * L.row_bytes();
    if constexpr (DT == KvDtype::F16) {
#pragma unroll
      for (int e = 0; e < E; ++e) reinterpret_cast<__half*>(dst)[lane + 32 * e] = __float2half_rn(x[e]);
    } else {
      // kv_quant.cuh (atom::quant::kv_head_params / kv_quantize_head) on the fp32 values
      constexpr int qmax = DT == KvDtype::I4 ? 15 : 255;
      float lo = 0.0f, hi = 0.0f;
#pragma unroll
      for (int e = 0; e < E; ++e) {
        lo = fminf(lo, x[e]);
        hi = fmaxf(hi, x[e]);
      }
      const kvq::Params prm = kvq::warp_params<qmax>(lo, hi);
#pragma unroll
      for (int e = 0; e < E; ++e) {
        const uint32_t q = kvq::quantize<qmax>(x[e], prm);
        if constexpr (DT == KvDtype::I4) {
          // element j = lane + 32e shares byte j/2 with its neighbour in lane ^ 1 (low nibble = even j)
          const uint32_t nb = __shfl_xor_sync(0xffffffffu, q, 1);
          if ((lane & 1) == 0) dst[(lane + 32 * e) / 2] = uint8_t(q | nb << 4);
        } else {
          dst[lane + 32 * e] = uint8_t(q);
        }
      }
      if (lane == 0) kvq::store_params(blk, L, is_v, off, prm);
    }
  }
}

template <KvDtype DT>
void launch(const PagedKvLayout& L, uint8_t* pool, int layer, const float* qkv, const int32_t* pos,
            const float* inv_freq, int64_t T, int nh, __half* q16, const int32_t* slots, cudaStream_t s) {
  if (L.head_dim == 128)
    rope_kv_f32_kernel<DT, 128><<<unsigned(T), kWarps * 32, 0, s>>>(L, pool, layer, qkv, pos, inv_freq, nh, q16, slots);
  else
    rope_kv_f32_kernel<DT, 64><<<unsigned(T), kWarps * 32, 0, s>>>(L, pool, layer, qkv, pos, inv_freq, nh, q16, slots);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_kv_append_f32(const float* qkv, const int32_t* pos, const float* inv_freq, int64_t T, int nh, int nkv,
                        int hd, uint16_t* q16, PagedKvCache& kv, int layer, const int32_t* slots, cudaStream_t s) {
  const PagedKvLayout L = kv.layout();
  ATOM_CUDA_REQUIRE(layer >= 0 && layer < L.n_layers, "rope_kv_append_f32: layer out of range");
  ATOM_CUDA_REQUIRE(hd == L.head_dim && nkv == L.n_kv_heads && nh > 0 && nh % nkv == 0,
                    "rope_kv_append_f32: head shape differs from the cache's");
  ATOM_CUDA_REQUIRE(T >= 0 && T < (int64_t(1) << 31), "rope_kv_append_f32: T out of range");
  if (T == 0) return;
  ATOM_CUDA_REQUIRE(qkv && pos && inv_freq && q16 && slots, "rope_kv_append_f32: null pointer");
  auto* q = reinterpret_cast<__half*>(q16);
  switch (L.dtype) {
    case KvDtype::F16: launch<KvDtype::F16>(L, kv.data(), layer, qkv, pos, inv_freq, T, nh, q, slots, s); break;
    case KvDtype::I8: launch<KvDtype::I8>(L, kv.data(), layer, qkv, pos, inv_freq, T, nh, q, slots, s); break;
    case KvDtype::I4: launch<KvDtype::I4>(L, kv.data(), layer, qkv, pos, inv_freq, T, nh, q, slots, s); break;
  }
}

}  // namespace atom::cuda
