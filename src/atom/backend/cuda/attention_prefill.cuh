// Pieces shared by the two prefill attention kernels (attention_prefill.cu: mma.sync, FA2 style;
// attention_prefill_wgmma.cu: wgmma): the launch arguments and the dequantization of stored K/V chunks.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/ptx.cuh"

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

// The query tile of kBM rows a prefill CTA owns and the keys it sees (every prefill kernel). Grid (query tile,
// sequence, query head), the heaviest (latest) query tiles first: causal work grows with the tile index.
// Query row i of a sequence with nq new rows sits at position len - nq + i and sees keys 0..position.
template <int kBM>
struct PrefillTile {
  int b, h, hk, q_begin, row0, nrows = 0, qpos0 = 0, kend = 0;
  bool active;  // false: past the sequence's new rows, nothing to do
  __device__ explicit PrefillTile(const PrefillArgs& a)
      : b(blockIdx.y), h(blockIdx.z), hk(h / a.group), q_begin(a.cu_q[b]), row0((gridDim.x - 1 - blockIdx.x) * kBM) {
    const int nq = a.cu_q[b + 1] - q_begin;
    active = row0 < nq;
    if (!active) return;
    const int len = a.seq_lens[b];
    nrows = min(kBM, nq - row0);
    qpos0 = len - nq + row0;
    kend = min(len, qpos0 + nrows);
  }
  static dim3 grid(int B, int max_q, int n_heads) {
    return dim3(unsigned((max_q + kBM - 1) / kBM), unsigned(B), unsigned(n_heads));
  }
};

// The per-token metadata of a 64-key tile of an int8 / int4 cache, as both kernels stage it behind the
// tile's raw K and V values: K scales (fp16) at byte 0, V scales at 128, K zeros (u8) at 256, V zeros at 320.
constexpr int kTileMetaKeys = 64;
constexpr int kTileMetaBytes = kTileMetaKeys * 6;

// Thread tid's chunk of a tile's metadata (threads 0..23: 8 chunks of 8 scales each for K and V, 4 of 16
// zeros each): its first token within the tile, its source offset in a block for token offset `off` in the
// page, and its destination in the staged layout. A chunk's tokens share one page (pages hold >= 16 tokens).
struct TileMetaChunk {
  int tok, kind;
  __device__ explicit TileMetaChunk(int tid) {
    kind = tid < 8 ? 0 : tid < 16 ? 1 : tid < 20 ? 2 : 3;
    const int idx = kind < 2 ? tid - 8 * kind : tid - 16 - 4 * (kind - 2);
    tok = kind < 2 ? 8 * idx : 16 * idx;
  }
  __device__ int64_t src(const PagedKvLayout& L, int off) const {
    return kind == 0 ? L.k_scales() + 2 * off : kind == 1 ? L.v_scales() + 2 * off : kind == 2 ? L.k_zeros() + off : L.v_zeros() + off;
  }
  __device__ int dst() const { return kind == 0 ? 2 * tok : kind == 1 ? 128 + 2 * tok : kind == 2 ? 256 + tok : 320 + tok; }
};

// The block holding thread tid's metadata chunk of tile kt; nullptr for threads >= 24 and chunks past kend.
// (Separate from the copy so that a pipeline can look the block up a tile ahead: the block-table read is a
// dependent global load.)
__device__ __forceinline__ const uint8_t* tile_meta_block(const HeadPages& hp, const int32_t* bt, int kt, int kend, int tid) {
  if (tid >= 24) return nullptr;
  const int t = kt * kTileMetaKeys + TileMetaChunk(tid).tok;
  return t < kend ? hp.block(bt[t >> hp.shift]) : nullptr;
}

// cp.async of tile kt's metadata chunk of thread tid (blk from tile_meta_block; nullptr zero-fills).
__device__ __forceinline__ void issue_tile_meta(uint8_t* meta, const uint8_t* blk, const PrefillArgs& a, const HeadPages& hp,
                                                int kt, int tid) {
  if (tid >= 24) return;
  const TileMetaChunk m(tid);
  const int off = (kt * kTileMetaKeys + m.tok) & hp.mask;
  ptx::cp_async_16(meta + m.dst(), blk ? blk + m.src(a.L, off) : a.pool, blk != nullptr);
}

// The same with the block looked up here (the mma.sync kernel).
__device__ __forceinline__ void issue_tile_meta(uint8_t* meta, const PrefillArgs& a, const HeadPages& hp,
                                                const int32_t* bt, int kt, int kend, int tid) {
  issue_tile_meta(meta, tile_meta_block(hp, bt, kt, kend, tid), a, hp, kt, tid);
}

// dequant_pieces' zero and scale operands of key r's K (which = 0) or V (1) row from staged metadata.
__device__ __forceinline__ void tile_meta_operands(const uint8_t* meta, int which, int r, uint32_t& zz, uint32_t& s2) {
  const uint32_t z = meta[256 + 64 * which + r];
  const uint32_t sh = *reinterpret_cast<const uint16_t*>(meta + 128 * which + 2 * r);
  zz = attn::zero_bias_half2(z, z);
  s2 = sh | (sh << 16);
}

// Causal mask and one online-softmax step over a kKeys-key tile held in the m16n8 accumulator layout (both
// prefill kernels): at(j, e) is element e of n8-tile j, row g + 8 (e / 2), key 8j + 2c + (e & 1) of tile kt. The
// scores become the weights exp2(s * scale - max) in place; m, l are rows g, g+8's running max and sum (l
// already rescaled), corr the factor the caller applies to its O rows. MASK: apply the causal mask (keys past a
// row's query position get -inf). The scale is folded into the exponent's FMA (the max is taken on the raw
// scores; scale_log2 > 0).
template <bool MASK, int kKeys, class At>
__device__ __forceinline__ void tile_softmax_step(At&& at, int kt, int c, const int (&qpos)[2], float scale_log2,
                                                  float (&m)[2], float (&l)[2], float (&corr)[2]) {
  float mloc[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float v = at(j, e);
      if constexpr (MASK) {
        const int key = kt * kKeys + 8 * j + 2 * c + (e & 1);
        v = key <= qpos[e / 2] ? v : -INFINITY;
        at(j, e) = v;
      }
      mloc[e / 2] = fmaxf(mloc[e / 2], v);
    }
  float muse[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float mnew = fmaxf(m[i], attn::warp_max_quad(mloc[i]) * scale_log2);
    muse[i] = mnew == -INFINITY ? 0.0f : mnew;
    corr[i] = attn::exp2_ftz(m[i] - muse[i]);
    m[i] = mnew;
    l[i] *= corr[i];
  }
#pragma unroll
  for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      at(j, e) = attn::exp2_ftz(fmaf(at(j, e), scale_log2, -muse[e / 2]));
      l[e / 2] += at(j, e);
    }
}
// The same, masking only where needed. qmin_warp: the smallest query position of the warp's rows (warp-uniform):
// a tile wholly at or below it needs no mask, which is all but the last one or two tiles of a causal row (the
// mask's compare and select were ~10% of the kernels' instructions, results §9a).
template <int kKeys = kTileMetaKeys, class At>
__device__ __forceinline__ void tile_online_softmax(At&& at, int kt, int c, const int (&qpos)[2], int qmin_warp,
                                                    float scale_log2, float (&m)[2], float (&l)[2], float (&corr)[2]) {
  if ((kt + 1) * kKeys - 1 <= qmin_warp) tile_softmax_step<false, kKeys>(at, kt, c, qpos, scale_log2, m, l, corr);
  else tile_softmax_step<true, kKeys>(at, kt, c, qpos, scale_log2, m, l, corr);
}
// The warp's smallest query position (-1 when it holds padding rows: then every tile is masked).
__device__ __forceinline__ int warp_min_qpos(const int (&qpos)[2]) {
  return __reduce_min_sync(0xffffffffu, min(qpos[0], qpos[1]));
}

// The wgmma kernel's launcher (attention_prefill_wgmma.cu); paged_attention_prefill checks the arguments.
void launch_prefill_wgmma(const PrefillArgs& a, int B, int max_q, cudaStream_t s);
// The warp-specialized kernel's launcher (attention_prefill_ws.cu, PrefillKernel::kWgmmaWs).
void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, cudaStream_t s);

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
