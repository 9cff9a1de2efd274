// Prefill / chunked-prefill attention on wgmma (sm_90a): the same contract as the mma.sync kernel of
// attention_prefill.cu (PrefillKernel::kWgmma selects it), written to lift the FA2-style kernel's ceiling
// (ldmatrix traffic at 16 query rows per warp, mma.sync's half rate; docs/results.md §6d).
//
// CTA = 2 warpgroups, 128 query rows of one head (64 per warpgroup), key tiles shared by both (128 keys for
// fp16, 64 for int8 / int4: kTileKeys).
//   Q        fp16 A fragments in registers for the whole kernel (loaded once from global memory).
//   K tile   shared memory, wgmma's canonical K-major layout without swizzle (8-row x 16-byte core
//            matrices, core (key/8, d/8) at byte ((key/8) * D/8 + d/8) * 128): S = Q.K^T is
//            D/16 wgmma m64n{64,128}k16 with K as the B operand (int K: the int8 GEMM's descriptor geometry;
//            fp16 K: rows as stored, 128-byte swizzle).
//   V tile   int8 / int4: dequantized and stored transposed, V^T[d][key] in the same layout (core (d/8,
//            key/8)) except that the key blocks are 144 bytes apart (LBO), so O += P.V is 64/16 wgmma
//            m64n{D}k16 with B = V^T K-major, and the transpose's 4-byte stores meet no bank conflicts.
//            fp16: cp.async'd as stored (key rows) into the fp16 K tile's 128-byte-swizzled layout and read
//            by wgmma as an N-major (transposed) B operand: no conversion at all.
//   P        the S accumulator layout is the A fragment layout of the next product (as in FA2).
// Pipeline: one cp.async group per key tile, two tiles ahead: int8/int4 K and V into a raw stage whose
// skewed chunk-major layout keeps the fill and both conversions conflict-free; fp16 K and V straight into
// their tiles (three of each). Tile kt+1's K is dequantized under S(kt)'s wgmma, its V under P.V(kt)'s.
// tools/reference/emulate_prefill_wgmma.py replays the layouts, the fragment maps and the bank behaviour.
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/attention_prefill_wgmma.cuh"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {
using namespace wgprefill;

// The pipeline's buffer counts. OV: the overlapped schedule (prefill_wgmma_kernel's kOverlap), three tiles
// ahead: three raw stages and three K tiles. V tiles: two converted ones (one read by P.V, one written), or
// fp16's filled ones, which must also hold the tiles in flight (3, or 4 when P.V(kt) runs beside three
// tiles ahead).
template <KvDtype DT, int D, bool OV>
struct WgPipe : WgSmem<DT, D, kTileKeys<DT, OV>> {
  using B = WgSmem<DT, D, kTileKeys<DT, OV>>;
  static constexpr int kKTiles = B::kDirectK || OV ? 3 : 2;
  static constexpr int kVTiles = !B::kDirectV ? 2 : OV ? 4 : 3;
  static constexpr int kRawStages = B::kRaw == 0 ? 0 : OV ? 3 : 2;
  // + 1 KiB: the K (and fp16 V) tiles start on a 1 KiB boundary (the swizzle pattern follows address bits 7..9).
  static constexpr size_t kBytes = 1024 + kKTiles * B::kTileK + kVTiles * B::kTileV + kRawStages * B::kRaw;
};

// kOverlap (PrefillKernel::kWgmmaOverlap): S(kt+1) and P.V(kt) are issued together and the softmax of
// tile kt+1 runs while P.V(kt) is on the tensor cores (FA3's intra-warpgroup overlap). P is double-buffered
// in registers (the loop is unrolled by 2 so that each buffer is a fixed register set: P.V(kt) reads one
// while the softmax writes the other), tiles are loaded three ahead, and iteration kt converts K(kt+2) and
// V(kt+1). Correct, and no faster than the plain schedule (results.md §9a, §15).
template <KvDtype DT, int D, bool kOverlap>
__global__ void __launch_bounds__(kThreads, 1) prefill_wgmma_kernel(const PrefillArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SM = WgPipe<DT, D, kOverlap>;
  constexpr int kBN = SM::kBN;  // keys per tile
  using Rows = WgRows<DT, D, kBN>;
  using PFrag = typename Rows::PFrag;
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const tiles_k = smem + ((1024u - ptx::smem_addr(smem)) & 1023u);  // kKTiles K tiles, 1 KiB aligned
  uint8_t* const tiles_v = tiles_k + SM::kKTiles * SM::kTileK;               // kVTiles V (or V^T) tiles
  uint8_t* const raw0 = tiles_v + SM::kVTiles * SM::kTileV;                  // kRawStages raw stages
  auto raw = [&](int i) { return raw0 + (SM::kRawStages ? i % SM::kRawStages : 0) * SM::kRaw; };
  auto tileK = [&](int i) { return tiles_k + (i % SM::kKTiles) * SM::kTileK; };
  auto tileV = [&](int i) { return tiles_v + (i % SM::kVTiles) * SM::kTileV; };

  const PrefillTile<kBM> qtile(a);
  if (!qtile.active) return;
  const int b = qtile.b, h = qtile.h, hk = qtile.hk, q_begin = qtile.q_begin, row0 = qtile.row0, nrows = qtile.nrows,
            qpos0 = qtile.qpos0, kend = qtile.kend;
  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int r0 = 64 * wg + 16 * warp + lane / 4;  // this lane's first query row in the CTA's tile
  const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
  const HeadPages hp(a.L, a.pool, a.layer, hk);
  const int n_tiles = (kend + kBN - 1) / kBN;

  // Tiles 0 and 1 in flight while Q is loaded (one cp.async group per tile); tile 2's blocks looked up.
  // (kOverlap: tiles 0..2, tile 3's blocks.)
  constexpr int kAhead = kOverlap ? 3 : 2;
  TileBlocks<DT, D, kBN> tb;
#pragma unroll
  for (int t = 0; t < kAhead; ++t) {
    tb.lookup(hp, bt, t, kend, tid);
    if (n_tiles > t) issue_tile(raw(t), tileK(t), tileV(t), tb, a, hp, t, tid);
    ptx::cp_async_commit();
  }
  tb.lookup(hp, bt, kAhead, kend, tid);

  Rows w;
  w.init(a, q_begin, row0, nrows, qpos0, h, r0, lane % 4);

  if constexpr (kOverlap) {
    // ---- overlapped schedule ----
    if (n_tiles > 0) {
      ptx::cp_async_wait<2>();  // tile 0
      __syncthreads();
      if constexpr (!SM::kDirectK) convert_k<DT, D, kBN>(raw(0), tileK(0), 0, kend, tid);
      if constexpr (!SM::kDirectV) convert_v<DT, D, kBN>(raw(0), tileV(0), 0, kend, tid);
      if (n_tiles > 1) {
        ptx::cp_async_wait<1>();  // tile 1: its K is S(1)'s operand in iteration 0
        __syncthreads();
        if constexpr (!SM::kDirectK) convert_k<DT, D, kBN>(raw(1), tileK(1), 1, kend, tid);
      }
      ptx::fence_proxy_async_shared();
      __syncthreads();
    }
    PFrag pa, pb;
    if (n_tiles > 0) {  // S(0) and its softmax (O is still 0: its rescale can be skipped)
      ptx::wgmma_fence();
      w.issue_s(tileK(0));
      ptx::wgmma_commit();
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.s);
      float corr0[2];
      w.softmax(0, a.scale_log2, corr0);
      w.pack_p(pa);
      // fp16 K: iteration 0's fill of tile 3 lands in K slot 0, which the other warpgroup's S(0) may still be
      // reading (found by racecheck's slowed schedule, which reports no hazard: it does not see wgmma's reads).
      if constexpr (SM::kDirectK) __syncthreads();
    }
    // Iteration kt: P(kt) is in pc; K(kt+1) and V(kt) are in their tiles.
    auto step = [&](int kt, PFrag& pc, PFrag& pn) {
      if (kt + 3 < n_tiles) {
        issue_tile(raw(kt + 3), tileK(kt + 3), tileV(kt + 3), tb, a, hp, kt + 3, tid);
        tb.lookup(hp, bt, kt + 4, kend, tid);
      }
      ptx::cp_async_commit();
      const bool next = kt + 1 < n_tiles;
      // S(kt+1) and its softmax run on the last tile too (on a stale K tile whose keys kt+1 >= n_tiles are all
      // masked: m, l and O are unchanged): with no branch around them ptxas sees that the softmax reads only
      // the finished group; behind `if (next)` it serialised the wgmmas (C7514).
      ptx::wgmma_fence();
      w.issue_s(tileK(kt + 1));
      ptx::wgmma_commit();  // group: S(kt+1)
      ptx::wgmma_fence();
      w.issue_pv(tileV(kt), pc);
      ptx::wgmma_commit();  // group: P.V(kt)
      float corr[2];  // the softmax of tile kt+1 under P.V(kt)
      ptx::wgmma_wait<1>();
      ptx::wgmma_fence_operands(w.s);
      w.softmax(kt + 1, a.scale_log2, corr);
      w.pack_p(pn);
      ptx::cp_async_wait<1>();  // tile kt+2 (tile kt+3 may still be in flight)
      __syncthreads();          // every thread's part of tile kt+2 has landed
      if constexpr (!SM::kDirectK)
        if (kt + 2 < n_tiles) convert_k<DT, D, kBN>(raw(kt + 2), tileK(kt + 2), kt + 2, kend, tid);
      if constexpr (!SM::kDirectV)
        if (next) convert_v<DT, D, kBN>(raw(kt + 1), tileV(kt + 1), kt + 1, kend, tid);
      ptx::fence_proxy_async_shared();
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.o);
      w.rescale_o(corr);
      __syncthreads();  // K(kt+2), V(kt+1) converted; tiles kt and raw stage kt+1 are free
    };
    for (int kt = 0; kt < n_tiles; kt += 2) {
      step(kt, pa, pb);
      if (kt + 1 < n_tiles) step(kt + 1, pb, pa);
    }
  } else {
    if (n_tiles > 0) {
      ptx::cp_async_wait<1>();  // tile 0
      __syncthreads();
      if constexpr (!SM::kDirectK) convert_k<DT, D, kBN>(raw(0), tileK(0), 0, kend, tid);
      if constexpr (!SM::kDirectV) convert_v<DT, D, kBN>(raw(0), tileV(0), 0, kend, tid);
      ptx::fence_proxy_async_shared();
      __syncthreads();
    }
    // Iteration kt: tile kt+2 streams in; K of tile kt+1 is converted under S(kt) and its V under P.V(kt), so
    // the tensor cores have work during both conversions (the raw stage of tile kt+2 held tile kt, whose
    // conversion ended before the previous iteration's last barrier).
    for (int kt = 0; kt < n_tiles; ++kt) {
      if (kt + 2 < n_tiles) {
        issue_tile(raw(kt + 2), tileK(kt + 2), tileV(kt + 2), tb, a, hp, kt + 2, tid);
        tb.lookup(hp, bt, kt + 3, kend, tid);  // in flight until the next iteration's fill
      }
      ptx::cp_async_commit();
      // ---- S = Q K^T (64 rows x kBN keys per warpgroup), issued asynchronously ----
      w.clear_s();
      ptx::wgmma_fence();
      w.issue_s(tileK(kt));
      ptx::wgmma_commit();
      const bool next = kt + 1 < n_tiles;
      if (next) {
        ptx::cp_async_wait<1>();  // tile kt+1 (tile kt+2 may still be in flight)
        __syncthreads();
        if constexpr (!SM::kDirectK) convert_k<DT, D, kBN>(raw(kt + 1), tileK(kt + 1), kt + 1, kend, tid);
      }
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.s);
      float corr[2];
      w.softmax(kt, a.scale_log2, corr);
      w.rescale_o(corr);
      PFrag pf;
      w.pack_p(pf);
      ptx::wgmma_fence();
      w.issue_pv(tileV(kt), pf);
      ptx::wgmma_commit();
      if constexpr (!SM::kDirectV)  // its tile's last reader, P.V(kt-1), is done
        if (next) convert_v<DT, D, kBN>(raw(kt + 1), tileV(kt + 1), kt + 1, kend, tid);
      ptx::fence_proxy_async_shared();  // this thread's tile kt+1 writes (stores, cp.async) before the wgmma reads
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.o);
      __syncthreads();  // tiles kt+1 complete; both warpgroups are done with tiles kt and raw stage kt+1
    }
  }
  w.store(a, q_begin, row0, nrows, h, r0);
#else
  __trap();  // built without sm_90a: the host never dispatches here (device_runs_sm90a())
#endif
}

template <KvDtype DT, int D, bool OV>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WgPipe<DT, D, OV>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_wgmma_kernel<DT, D, OV>), smem);
  prefill_wgmma_kernel<DT, D, OV><<<PrefillTile<kBM>::grid(B, max_q, a.n_heads), kThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_wgmma(const PrefillArgs& a, int B, int max_q, cudaStream_t s, bool overlap) {
  with_kv_shape(a.L.dtype, a.L.head_dim, [&](auto dt, auto d) {
    if (overlap) launch<decltype(dt)::value, decltype(d)::value, true>(a, B, max_q, s);
    else launch<decltype(dt)::value, decltype(d)::value, false>(a, B, max_q, s);
  });
}

}  // namespace atom::cuda
