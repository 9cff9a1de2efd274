// Pieces shared by the two prefill attention kernels (attention_prefill.cu: mma.sync, FA2 style;
// attention_prefill_wgmma.cu: wgmma): the launch arguments and the dequantization of stored K/V chunks.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "atom/backend/cuda/attention_common.cuh"

namespace atom::cuda {

struct PrefillArgs {
  PagedKvLayout L;
  const uint8_t* pool;
  int layer;
  const __half* q;
  const int32_t* cu_q;
  const int32_t* seq_lens;
  const int32_t* block_tables;
  int max_blocks, n_heads, group;
  float scale_log2;
  __half* out;
};

// The wgmma kernel's launcher (attention_prefill_wgmma.cu); paged_attention_prefill checks the arguments.
void launch_prefill_wgmma(const PrefillArgs& a, int B, int max_q, cudaStream_t s);

// One 16-byte chunk of stored values (8 fp16, 16 int8 or 32 int4 elements of a row) as fp16, in pieces of 8
// consecutive elements: (q - zero) exact in fp16, times the fp16 scale (one rounding, as an fp16 cache would
// hold it). zz = half2(1024 + zero) twice, s2 = the scale twice.
template <KvDtype DT>
constexpr int kChunkPieces = DT == KvDtype::F16 ? 1 : DT == KvDtype::I8 ? 2 : 4;

template <KvDtype DT>
__device__ __forceinline__ void dequant_pieces(const uint4 x, uint32_t zz, uint32_t s2, uint4 (&out)[kChunkPieces<DT>]) {
  const uint32_t w[4] = {x.x, x.y, x.z, x.w};
  auto mul = [&](uint32_t v) {
    __half2 r = __hmul2(*reinterpret_cast<__half2*>(&v), *reinterpret_cast<const __half2*>(&s2));
    return *reinterpret_cast<uint32_t*>(&r);
  };
  if constexpr (DT == KvDtype::F16) {
    out[0] = x;
  } else if constexpr (DT == KvDtype::I8) {
    uint32_t o[8];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      o[2 * i] = mul(attn::hsub2_u32(attn::bytes01_to_half2_biased(w[i]), zz));
      o[2 * i + 1] = mul(attn::hsub2_u32(attn::bytes23_to_half2_biased(w[i]), zz));
    }
    out[0] = make_uint4(o[0], o[1], o[2], o[3]);
    out[1] = make_uint4(o[4], o[5], o[6], o[7]);
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // word i: elements 8i..8i+7
      uint32_t e[4];               // (e0,e4) (e1,e5) (e2,e6) (e3,e7)
#pragma unroll
      for (int k = 0; k < 4; ++k) e[k] = mul(attn::hsub2_u32(attn::nibbles_to_half2_biased(w[i] >> (4 * k)), zz));
      out[i] = make_uint4(__byte_perm(e[0], e[1], 0x5410), __byte_perm(e[2], e[3], 0x5410),
                          __byte_perm(e[0], e[1], 0x7632), __byte_perm(e[2], e[3], 0x7632));
    }
  }
}

// The same chunk written to dst as consecutive halves (8, 16 or 32).
template <KvDtype DT>
__device__ __forceinline__ void dequant_chunk(const uint4 x, uint32_t zz, uint32_t s2, __half* dst) {
  uint4 out[kChunkPieces<DT>];
  dequant_pieces<DT>(x, zz, s2, out);
#pragma unroll
  for (int i = 0; i < kChunkPieces<DT>; ++i) reinterpret_cast<uint4*>(dst)[i] = out[i];
}

}  // namespace atom::cuda
