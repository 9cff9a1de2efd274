// The tile pieces shared by the two wgmma prefill kernels (sm_90a): attention_prefill_wgmma.cu (all threads
// fill, then compute) and attention_prefill_ws.cu (a producer warpgroup fills,
// two consumer warpgroups take turns at the tensor cores). The layouts are described in the first file.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/attention_prefill.cuh"

namespace atom::cuda::wgprefill {

constexpr int kWG = 2;                // warpgroups per CTA
constexpr int kBM = 64 * kWG;         // query rows per CTA
constexpr int kThreads = 128 * kWG;

// Keys per tile of the plain wgmma kernel: 128 for fp16, which halves the per-key share of each tile's fixed
// work (the softmax's row reductions and O rescale, two CTA barriers, the wgmma waits); 64 for int8 / int4,
// whose tile metadata layout is the 64-key one (kTileMetaKeys).
template <KvDtype DT>
constexpr int kTileKeys = DT == KvDtype::F16 ? 128 : kTileMetaKeys;

template <KvDtype DT, int D, int BN>
struct WgSmem {
  static_assert(BN == kTileMetaKeys || (BN == 128 && DT == KvDtype::F16), "int8 / int4 tiles hold 64 keys (metadata)");
  static constexpr int kBN = BN;
  static constexpr KvDtype kDT = DT;
  static constexpr int kBits = DT == KvDtype::F16 ? 16 : DT == KvDtype::I8 ? 8 : 4;
  static constexpr int kRowBytes = D * kBits / 8;
  static constexpr int kChunks = kRowBytes / 16;           // 16-byte chunks per stored row
  static constexpr int kChunkElems = 128 / kBits;           // elements per chunk
  // Both tiles of a key tile, K and V, hold key rows in wgmma's 128-byte swizzle (SBO 1024, tile_swz): S = Q.K^T
  // reads the K tile as a K-major B operand, O += P.V the V tile as an N-major (transposed) one. fp16 rows are
  // already the operands' elements, so cp.async lands them there as stored (kDirect); int8 / int4 rows land in
  // a raw stage and are dequantized into the same layout (convert_rows), V included: no transpose.
  static constexpr bool kDirect = DT == KvDtype::F16;
  // int4 tiles hold each row in dequant_pieces' interleaved order (no byte permutes in the conversion): S = Q.K^T
  // sums over d in any order Q matches, and O's columns come out in it (WgRows permutes Q's loads and O's stores).
  static constexpr bool kInterleaved = DT == KvDtype::I4;
  // A raw plane (the K or the V values of a tile) is row-major in 16-byte slots, each 8-slot line XOR-permuted
  // by raw_swz: the fill (contiguous runs) and the 8-key reads of RowConverter meet 8 different bank quads per
  // 8 lanes.
  static constexpr size_t kRawPlane = kDirect ? 0 : size_t(BN) * kRowBytes;
  static constexpr size_t kMeta = kDirect ? 0 : size_t(kTileMetaBytes);  // issue_tile_meta's layout
  static constexpr size_t kRaw = 2 * kRawPlane + kMeta;  // one raw stage: K plane, V plane, metadata (none: fp16)
  static constexpr size_t kTile = size_t(BN) * D * 2;     // one fp16 K or V tile
  static constexpr size_t kKAtom = size_t(BN) * 128;      // one 64-element swizzle atom column of a tile
  __device__ static uint32_t raw_swz(int r, int ch) {
    const int lin = r * kChunks + ch;
    const int h = kChunks >= 8 ? r & 7 : (lin >> 3) & 7;
    return uint32_t((lin & ~7) | ((lin ^ h) & 7)) * 16;
  }
  // Key r's fp16 chunk ch (elements 8ch..8ch+7) in a K or V tile: 128-byte swizzle as wgmma reads it (SBO 1024).
  __device__ static uint32_t tile_swz(int r, int ch) {
    return uint32_t((ch >> 3) * kKAtom + (r >> 3) * 1024 + (r & 7) * 128 + (((ch & 7) ^ (r & 7)) << 4));
  }
};

// The blocks of one tile's fill items of this thread (item j: i = tid + j * NT, key i / kChunks, chunk
// i % kChunks, as the page stores them) and of its metadata chunk, looked up one tile before the fill:
// the block-table read is a dependent global load that the fill would otherwise wait for.
// NT: the threads that fill (the whole CTA, or a producer warpgroup).
template <KvDtype DT, int D, int BN, int NT = kThreads>
struct TileBlocks {
  using SM = WgSmem<DT, D, BN>;
  static constexpr int kNT = NT;
  static constexpr int kItems = BN * SM::kChunks, kPerThread = (kItems + NT - 1) / NT;
  static_assert(kPerThread <= 32 && BN % 32 == 0);  // (valid's bits; a tile holds whole pages of 16 or 32)
  // Item j's block, always a valid address (the head's first block past the end: a zero-filling copy reads
  // nothing), and whether it holds the key (bit j of valid). Without the fallback every copy rebuilt a
  // `blk ? blk + off : pool` select: ~8 moves and selects per cp.async in the fp16 producer (results §16h).
  const uint8_t* blk[kPerThread];
  uint32_t valid;
  const uint8_t* meta;
  TileMetaChunk mc;
  __device__ TileBlocks(const PagedKvLayout& L, int tid) : mc(tid, L) {}
  __device__ void lookup(const HeadPages& hp, const int32_t* bt, int kt, int kend, int tid) {
    valid = 0;
#pragma unroll
    for (int j = 0; j < kPerThread; ++j) {
      const int i = tid + j * NT, t = kt * BN + i / SM::kChunks;
      const bool ok = i < kItems && t < kend;
      blk[j] = ok ? hp.block(bt[t >> hp.shift]) : hp.base;
      valid |= uint32_t(ok) << j;
    }
    meta = nullptr;
    if constexpr (DT != KvDtype::F16) meta = tile_meta_block(hp, bt, kt, kend, mc);
  }
};

// cp.async of the raw bytes of key tile kt: int K and V into a raw stage, fp16 K and V straight into their
// tiles; tokens >= kend are zero-filled (never read unmasked: P is 0 there and V is 0, not stale NaN).
template <class TB>
__device__ __forceinline__ void issue_tile(uint8_t* raw, uint8_t* tile_k, uint8_t* tile_v, const TB& tb,
                                           const PrefillArgs& a, const HeadPages& hp, int kt, int tid) {
  using SM = typename TB::SM;
  constexpr int NT = TB::kNT;
  const int32_t k_off = int32_t(a.L.k_values()), v_off = int32_t(a.L.v_values());
#pragma unroll
  for (int j = 0; j < TB::kPerThread; ++j) {
    const int i = tid + j * NT;
    if (TB::kItems % NT != 0 && i >= TB::kItems) break;
    const int r = i / SM::kChunks, ch = i % SM::kChunks;
    const int32_t row = (r & hp.mask) * SM::kRowBytes + 16 * ch;  // (kt * BN + r) & mask: BN holds whole pages
    const uint8_t* src = tb.blk[j] + row;
    const bool ok = (tb.valid >> j) & 1u;
    uint8_t* k_dst = SM::kDirect ? tile_k + SM::tile_swz(r, ch) : raw + SM::raw_swz(r, ch);
    uint8_t* v_dst = SM::kDirect ? tile_v + SM::tile_swz(r, ch) : raw + SM::kRawPlane + SM::raw_swz(r, ch);
    ptx::cp_async_16(k_dst, src + k_off, ok);
    ptx::cp_async_16(v_dst, src + v_off, ok);
  }
  if constexpr (SM::kDT != KvDtype::F16) issue_tile_meta(raw + 2 * SM::kRawPlane, tb.meta, a, hp, kt, tb.mc);
}


// Item i of a tile's (key, chunk) sweep with the keys fastest within 8: lanes 8j..8j+7 take 8 keys of one
// chunk column, whose 16-byte pieces the swizzle puts in 8 different bank quads.
template <int kChunks>
__device__ __forceinline__ void sweep_item(int i, int& r, int& ch) {
  r = (i & 7) + 8 * (i / (8 * kChunks));
  ch = (i >> 3) % kChunks;
}

// Raw K (which = 0) or V (1) of a raw stage -> its tile (int8 / int4 only), in the layout the fp16 fill gives:
// one 16-byte store per 8 elements. NT: the converting threads. This thread's items (sweep_item(tid + j NT))
// are keys r0 + j kRowStep of one chunk column, so their addresses are fixed for the whole kernel: computed
// once here, the tile loop adds only constants. Keys past the end get zeros (stored garbage may be NaN, and
// 0 * NaN = NaN even where P is 0); only the last tile can hold any, so full tiles skip the check.
template <KvDtype DT, int D, int BN, int NT>
struct RowConverter {
  using SM = WgSmem<DT, D, BN>;
  static constexpr int P = kChunkPieces<DT>;
  static constexpr int kTotal = BN * SM::kChunks;  // items per plane
  static constexpr int kItems = kTotal >= NT ? kTotal / NT : 1;
  static constexpr int kRowStep = NT / SM::kChunks;
  static_assert(kTotal < NT ? NT % kTotal == 0 : kTotal % NT == 0 && NT % (8 * SM::kChunks) == 0,
                "item j + 1 is item j's chunk column kRowStep keys on (raw_swz and tile_swz shift by constants)");
  bool active;  // false: a thread past the items (fewer items than threads)
  int r0;
  uint32_t raw_off, tile_off[P];

  __device__ explicit RowConverter(int tid) {
    active = kTotal >= NT || tid < kTotal;
    int ch;
    sweep_item<SM::kChunks>(tid % kTotal, r0, ch);
    raw_off = SM::raw_swz(r0, ch);
#pragma unroll
    for (int p = 0; p < P; ++p) tile_off[p] = SM::tile_swz(r0, ch * P + p);
  }
  // Converts plane `which` of raw stage `raw` (key tile kt) into `tile`.
  __device__ __forceinline__ void operator()(const uint8_t* raw, int which, uint8_t* tile, int kt, int kend) const {
    const int n_valid = kend - kt * BN;  // uniform: the branch does not diverge
    if (n_valid >= BN) convert<true>(raw, which, tile, n_valid);
    else convert<false>(raw, which, tile, n_valid);
  }

 private:
  template <bool kFull>
  __device__ __forceinline__ void convert(const uint8_t* raw, int which, uint8_t* tile, int n_valid) const {
    if (kTotal < NT && !active) return;
    const uint8_t* src = raw + which * SM::kRawPlane + raw_off;
    const uint8_t* meta = raw + 2 * SM::kRawPlane;
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int r = r0 + j * kRowStep;
      uint4 pc[P];
      if (kFull || r < n_valid) {
        const uint4 x = *reinterpret_cast<const uint4*>(src + j * NT * 16);
        uint32_t zz, s2;
        tile_meta_operands(meta, which, r, zz, s2);
        dequant_pieces<DT, SM::kInterleaved>(x, zz, s2, pc);
      } else {
#pragma unroll
        for (int p = 0; p < P; ++p) pc[p] = make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int p = 0; p < P; ++p) *reinterpret_cast<uint4*>(tile + tile_off[p] + j * kRowStep * 128) = pc[p];
    }
  }
};

// One consumer warpgroup's 64 query rows (this lane: rows r0 and r0 + 8, r0 = 64 * wg + 16 * warp + g) and
// their products with a key tile: Q as wgmma A fragments (in registers for the whole kernel), the S
// accumulators, the online-softmax state and O. The schedules (attention_prefill_wgmma.cu, _ws.cu) decide
// when each step runs; the caller fences, commits and waits the wgmma groups.
template <KvDtype DT, int D, int BN>
struct WgRows {
  using SM = WgSmem<DT, D, BN>;
  static constexpr int kNKB = D / 16;  // k16 steps of S = Q.K^T
  static constexpr int kNT = D / 8;    // n8 column tiles of O
  using PFrag = uint32_t[BN / 16][4];  // P as the A fragments of O += P.V
  uint32_t qf[kNKB][4];
  int qpos[2], qmin_warp, c;
  float m[2], l[2];
  float o[4 * kNT];
  float s[BN / 2];

  // This lane's k-slots 2c, 2c+1 of the 8 dims at q8: the K tile's slots (interleaved: dims c, c+4).
  __device__ uint32_t q_pair(const __half* q8) const {
    if constexpr (SM::kInterleaved) {
      __half2 v = __halves2half2(q8[interleaved_dim(2 * c)], q8[interleaved_dim(2 * c + 1)]);
      return *reinterpret_cast<uint32_t*>(&v);
    } else {
      return *reinterpret_cast<const uint32_t*>(q8 + 2 * c);
    }
  }
  // Loads this lane's query rows (-1 positions mask every key for padding rows) and zeroes the state.
  __device__ void init(const PrefillArgs& a, int q_begin, int row0, int nrows, int qpos0, int h, int r0, int lane_c) {
    c = lane_c;
    load_q(a, q_begin, row0, nrows, qpos0, h, r0);
    reset();
  }
  // This lane's query rows and their positions (the persistent kernel loads the next item's while the current
  // item's last P.V runs: neither reads them).
  __device__ void load_q(const PrefillArgs& a, int q_begin, int row0, int nrows, int qpos0, int h, int r0) {
    const int64_t qstride = int64_t(a.n_heads) * D;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int r = r0 + 8 * i;
      qpos[i] = r < nrows ? qpos0 + r : -1;
      const __half* qr = a.q + (q_begin + row0 + min(r, nrows - 1)) * qstride + int64_t(h) * D;
#pragma unroll
      for (int kb = 0; kb < kNKB; ++kb) {
        qf[kb][i] = r < nrows ? q_pair(qr + 16 * kb) : 0u;
        qf[kb][2 + i] = r < nrows ? q_pair(qr + 16 * kb + 8) : 0u;
      }
    }
    qmin_warp = warp_min_qpos(qpos);
  }
  // The online-softmax state and O, zeroed for a new query tile.
  __device__ void reset() {
    m[0] = m[1] = -INFINITY;
    l[0] = l[1] = 0.0f;
#pragma unroll
    for (int i = 0; i < 4 * kNT; ++i) o[i] = 0.0f;
    clear_s();
  }
  // (defined for the asm's "+f"; scale-d = 0 ignores the old values. Re-zeroing per tile also ends s's live
  // range at the loop edge: without it ptxas gave the int8 kernels 2-4 more registers.)
  __device__ void clear_s() {
#pragma unroll
    for (int i = 0; i < BN / 2; ++i) s[i] = 0.0f;
  }
  // S = Q K^T into s, 64 rows x BN keys. K tile: K-major B, 128-byte swizzle, SBO 1024, a k16 step is 32 bytes
  // into its 64-element atom column.
  __device__ void issue_s(const uint8_t* tile_k) {
    const uint64_t dk = ptx::wgmma_desc(ptx::smem_addr(tile_k), 16u, 1024u, ptx::WgmmaSwizzle::k128B);
#pragma unroll
    for (int kb = 0; kb < kNKB; ++kb) {
      const uint32_t step = uint32_t((kb / 4) * SM::kKAtom + (kb % 4) * 32);
      if constexpr (BN == 128) {
        ptx::wgmma_m64n128k16_f16_rs(s, qf[kb], ptx::wgmma_desc_add(dk, step), kb > 0);
      } else {
        ptx::wgmma_m64n64k16_f16_rs(s, qf[kb], ptx::wgmma_desc_add(dk, step), kb > 0);
      }
    }
  }
  // Mask + online softmax of tile kt in s (rows g and g+8); corr: the factor for O's rows.
  __device__ void softmax(int kt, float scale_log2, float (&corr)[2]) {
    tile_online_softmax<BN>([&](int j, int e) -> float& { return s[4 * j + e]; }, kt, c, qpos, qmin_warp, scale_log2, m, l,
                            corr);
  }
  // P's A fragments straight from the S accumulator layout (as in FA2).
  __device__ void pack_p(PFrag& pf) const {
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      pf[kk][0] = attn::pack_half2(s[8 * kk + 0], s[8 * kk + 1]);
      pf[kk][1] = attn::pack_half2(s[8 * kk + 2], s[8 * kk + 3]);
      pf[kk][2] = attn::pack_half2(s[8 * kk + 4], s[8 * kk + 5]);
      pf[kk][3] = attn::pack_half2(s[8 * kk + 6], s[8 * kk + 7]);
    }
  }
  // O += P V. V tile: N-major B with the 128-byte swizzle, d fastest within a 64-element atom column (LBO = the
  // next atom column, D = 128 spans two), SBO 1024 per 8 keys, a k16 step is 2 KiB.
  __device__ void issue_pv(const uint8_t* tile_v, const PFrag& pf) {
    constexpr int kTrans = 1;
    const uint64_t dv = ptx::wgmma_desc(ptx::smem_addr(tile_v), uint32_t(SM::kKAtom), 1024u, ptx::WgmmaSwizzle::k128B);
    constexpr uint32_t kStep = 2048u;
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      if constexpr (D == 128) {
        ptx::wgmma_m64n128k16_f16_rs<kTrans>(o, pf[kk], ptx::wgmma_desc_add(dv, kStep * kk), 1);
      } else {
        ptx::wgmma_m64n64k16_f16_rs<kTrans>(o, pf[kk], ptx::wgmma_desc_add(dv, kStep * kk), 1);
      }
    }
  }
  // O *= corr per row. corr = exp2(m_old - m_new) is exactly 1 where a row's max did not move, which past a long
  // row's first tiles is most tiles: then the warp skips its 4 kNT multiplies (exact; one vote, warp-uniform).
  __device__ void rescale_o(const float (&corr)[2]) {
    if (!__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) return;
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
      o[4 * j] *= corr[0]; o[4 * j + 1] *= corr[0];
      o[4 * j + 2] *= corr[1]; o[4 * j + 3] *= corr[1];
    }
  }
  // Normalises and stores this lane's rows of O.
  __device__ void store(const PrefillArgs& a, int q_begin, int row0, int nrows, int h, int r0) const {
    const int64_t qstride = int64_t(a.n_heads) * D;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float L = attn::warp_sum_quad(l[i]);
      const int r = r0 + 8 * i;
      if (r >= nrows) continue;
      const float inv = L > 0.0f ? 1.0f / L : 0.0f;
      __half* dst = a.out + (q_begin + row0 + r) * qstride + int64_t(h) * D;
#pragma unroll
      for (int j = 0; j < kNT; ++j) {  // columns 8j + 2c, 8j + 2c + 1 of the V tile's slots
        const float x0 = o[4 * j + 2 * i] * inv, x1 = o[4 * j + 2 * i + 1] * inv;
        if constexpr (SM::kInterleaved) {
          dst[8 * j + interleaved_dim(2 * c)] = __float2half_rn(x0);
          dst[8 * j + interleaved_dim(2 * c + 1)] = __float2half_rn(x1);
        } else {
          *reinterpret_cast<__half2*>(dst + 8 * j + 2 * c) = __floats2half2_rn(x0, x1);
        }
      }
    }
  }
};

}  // namespace atom::cuda::wgprefill
