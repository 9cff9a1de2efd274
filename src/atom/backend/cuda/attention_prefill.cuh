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
// sequence, query head), the heaviest (latest) query tiles first: causal work grows with the tile index (x = 0
// is a sequence's last tile). Query row i of a sequence with nq new rows sits at position len - nq + i and
// sees keys 0..position. The persistent kernel (attention_prefill_ws.cu) builds its items' tiles directly.
template <int kBM>
struct PrefillTile {
  int b = 0, h = 0, hk = 0, q_begin = 0, row0 = 0, nrows = 0, qpos0 = 0, kend = 0;
  bool active = false;  // false: past the sequence's new rows, nothing to do
  PrefillTile() = default;
  __device__ PrefillTile(const PrefillArgs& a, int x, int n_x, int b_, int h_)
      : b(b_), h(h_), hk(h_ / a.group), q_begin(a.cu_q[b_]), row0((n_x - 1 - x) * kBM) {
    const int nq = a.cu_q[b + 1] - q_begin;
    active = row0 < nq;
    if (!active) return;
    const int len = a.seq_lens[b];
    nrows = min(kBM, nq - row0);
    qpos0 = len - nq + row0;
    kend = min(len, qpos0 + nrows);
  }
  __device__ explicit PrefillTile(const PrefillArgs& a) : PrefillTile(a, blockIdx.x, gridDim.x, blockIdx.y, blockIdx.z) {}
  static int n_x(int max_q) { return (max_q + kBM - 1) / kBM; }
  static dim3 grid(int B, int max_q, int n_heads) { return dim3(unsigned(n_x(max_q)), unsigned(B), unsigned(n_heads)); }
};

// The per-token metadata of a 64-key tile of an int8 / int4 cache, as both kernels stage it behind the
// tile's raw K and V values: K scales (fp16) at byte 0, V scales at 128, K zeros (u8) at 256, V zeros at 320.
constexpr int kTileMetaKeys = 64;
constexpr int kTileMetaBytes = kTileMetaKeys * 6;

// Thread tid's chunk of a tile's metadata (threads 0..23: 8 chunks of 8 scales each for K and V, 4 of 16
// zeros each): its first token within the tile, its source in a block (block + src + (token offset in the
// page << src_shift)) and its destination in the staged layout. A chunk's tokens share one page (pages hold
// >= 16 tokens). Fixed per thread: the pipelined kernels build it once (TileBlocks).
struct TileMetaChunk {
  bool active;
  int tok, dst, src, src_shift;
  __device__ TileMetaChunk(int tid, const PagedKvLayout& L) {
    active = tid < 24;
    const int kind = tid < 8 ? 0 : tid < 16 ? 1 : tid < 20 ? 2 : 3;
    const int idx = kind < 2 ? tid - 8 * kind : tid - 16 - 4 * (kind - 2);
    tok = kind < 2 ? 8 * idx : 16 * idx;
    dst = kind == 0 ? 2 * tok : kind == 1 ? 128 + 2 * tok : kind == 2 ? 256 + tok : 320 + tok;
    src = int(kind == 0 ? L.k_scales() : kind == 1 ? L.v_scales() : kind == 2 ? L.k_zeros() : L.v_zeros());
    src_shift = kind < 2 ? 1 : 0;
  }
};

// The block holding chunk m of tile kt; nullptr for inactive threads and chunks past kend.
// (Separate from the copy so that a pipeline can look the block up a tile ahead: the block-table read is a
// dependent global load.)
__device__ __forceinline__ const uint8_t* tile_meta_block(const HeadPages& hp, const int32_t* bt, int kt, int kend,
                                                          const TileMetaChunk& m) {
  if (!m.active) return nullptr;
  const int t = kt * kTileMetaKeys + m.tok;
  return t < kend ? hp.block(bt[t >> hp.shift]) : nullptr;
}

// cp.async of chunk m of tile kt (blk from tile_meta_block; nullptr zero-fills).
__device__ __forceinline__ void issue_tile_meta(uint8_t* meta, const uint8_t* blk, const PrefillArgs& a, const HeadPages& hp,
                                                int kt, const TileMetaChunk& m) {
  if (!m.active) return;
  const int off = (kt * kTileMetaKeys + m.tok) & hp.mask;
  ptx::cp_async_16(meta + m.dst, blk ? blk + m.src + (off << m.src_shift) : a.pool, blk != nullptr);
}

// The same with the block looked up here (the mma.sync kernel).
__device__ __forceinline__ void issue_tile_meta(uint8_t* meta, const PrefillArgs& a, const HeadPages& hp,
                                                const int32_t* bt, int kt, int kend, int tid) {
  const TileMetaChunk m(tid, a.L);
  issue_tile_meta(meta, tile_meta_block(hp, bt, kt, kend, m), a, hp, kt, m);
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
// The warp-specialized kernel's launcher (attention_prefill_ws.cu, PrefillKernel::kWgmmaWs; tma_fill:
// kWgmmaWsTma, full fp16 tiles copied by TMA).
void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, bool tma_fill, cudaStream_t s);

// One 16-byte chunk of stored values (8 fp16, 16 int8 or 32 int4 elements of a row) as fp16, in pieces of 8
// consecutive elements: (q - zero) exact in fp16, times the fp16 scale (one rounding, as an fp16 cache would
// hold it). zz = half2(1024 + zero) twice, s2 = the scale twice.
// int4: each half2 takes two nibbles of a word with one mask, (e_k, e_k+4); the odd nibbles in place, as 64 + n
// (0x5400 | n << 4: ulp 1/16), so a word costs one shift. kInterleaved leaves each piece in that order,
// elements 0 4 1 5 2 6 3 7 (interleaved_dim; the wgmma kernels permute Q's and O's columns to match),
// otherwise two byte permutes per half2 pair restore 0..7.
template <KvDtype DT>
constexpr int kChunkPieces = DT == KvDtype::F16 ? 1 : DT == KvDtype::I8 ? 2 : 4;
// Slot s of a row of interleaved pieces holds that row's element interleaved_dim(s).
__host__ __device__ constexpr int interleaved_dim(int s) { return (s & ~7) | (s & 1) << 2 | (s >> 1 & 3); }

template <KvDtype DT, bool kInterleaved = false>
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
    const uint32_t zz64 = attn::lop3_and_or(zz << 4, 0x00F000F0u, 0x54005400u);  // half2(64 + zero): zeros < 16
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // word i: elements 8i..8i+7
      const uint32_t w8 = w[i] >> 8;
      uint32_t e[4];  // (e0,e4) (e1,e5) (e2,e6) (e3,e7)
      e[0] = mul(attn::hsub2_u32(attn::nibbles_to_half2_biased(w[i]), zz));
      e[1] = mul(attn::hsub2_u32(attn::lop3_and_or(w[i], 0x00F000F0u, 0x54005400u), zz64));
      e[2] = mul(attn::hsub2_u32(attn::nibbles_to_half2_biased(w8), zz));
      e[3] = mul(attn::hsub2_u32(attn::lop3_and_or(w8, 0x00F000F0u, 0x54005400u), zz64));
      if constexpr (kInterleaved) {
        out[i] = make_uint4(e[0], e[1], e[2], e[3]);
      } else {
        out[i] = make_uint4(__byte_perm(e[0], e[1], 0x5410), __byte_perm(e[2], e[3], 0x5410),
                            __byte_perm(e[0], e[1], 0x7632), __byte_perm(e[2], e[3], 0x7632));
      }
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
