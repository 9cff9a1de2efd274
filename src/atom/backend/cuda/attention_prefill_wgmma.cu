// Prefill / chunked-prefill attention on wgmma (sm_90a): the same contract as the mma.sync kernel of
// attention_prefill.cu (PrefillKernel::kWgmma selects it), written to lift the FA2-style kernel's ceiling
// (ldmatrix traffic at 16 query rows per warp, mma.sync's half rate; docs/results.md §6d).
//
// CTA = 2 warpgroups, 128 query rows of one head (64 per warpgroup), key tiles shared by both (128 keys for
// fp16, 64 for int8 / int4: kTileKeys).
//   Q        fp16 A fragments in registers for the whole kernel (loaded once from global memory).
//   K tile   shared memory, key rows in wgmma's 128-byte swizzle (8 keys x 128 bytes per 1 KiB, a 64-element
//            atom column per 64 dims): S = Q.K^T is D/16 wgmma m64n{64,128}k16 with K as a K-major B operand.
//   V tile   the same layout, read by O += P.V (64/16 wgmma m64n{D}k16) as an N-major (transposed) B operand,
//            so V is never transposed. fp16 K and V rows are cp.async'd as stored into their tiles; int8 /
//            int4 rows are dequantized into them (RowConverter), one 16-byte store per 8 elements; int4 rows in
//            an interleaved dim order that Q's loads and O's stores follow (WgSmem::kInterleaved).
//   P        the S accumulator layout is the A fragment layout of the next product (as in FA2).
// Pipeline: one cp.async group per key tile, two tiles ahead: int8/int4 K and V into a raw stage whose
// skewed chunk-major layout keeps the fill and the conversions' reads conflict-free; fp16 K and V straight into
// their tiles (three of each). Tile kt+1's K is dequantized under S(kt)'s wgmma, its V under P.V(kt)'s.
// tools/reference/emulate_prefill_wgmma.py replays the layouts, the fragment maps and the bank behaviour.
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/attention_prefill_wgmma.cuh"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {
using namespace wgprefill;

// The pipeline's buffer counts: two K tiles for int (one read by S, one converted), three for fp16 (filled
// two ahead); two converted V tiles for int (one read by P.V, one written), three filled ones for fp16.
template <KvDtype DT, int D>
struct WgPipe : WgSmem<DT, D, kTileKeys<DT>> {
  using B = WgSmem<DT, D, kTileKeys<DT>>;
  static constexpr int kKTiles = B::kDirect ? 3 : 2;
  static constexpr int kVTiles = B::kDirect ? 3 : 2;
  static constexpr int kRawStages = B::kRaw == 0 ? 0 : 2;
  // + 1 KiB: the tiles start on a 1 KiB boundary (the swizzle pattern follows address bits 7..9).
  static constexpr size_t kBytes = 1024 + (kKTiles + kVTiles) * B::kTile + kRawStages * B::kRaw;
};

template <KvDtype DT, int D>
__global__ void __launch_bounds__(kThreads, 1) prefill_wgmma_kernel(const PrefillArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SM = WgPipe<DT, D>;
  constexpr int kBN = SM::kBN;  // keys per tile
  using Rows = WgRows<DT, D, kBN>;
  using PFrag = typename Rows::PFrag;
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const tiles_k = smem + ((1024u - ptx::smem_addr(smem)) & 1023u);  // kKTiles K tiles, 1 KiB aligned
  uint8_t* const tiles_v = tiles_k + SM::kKTiles * SM::kTile;               // kVTiles V tiles
  uint8_t* const raw0 = tiles_v + SM::kVTiles * SM::kTile;                  // kRawStages raw stages
  auto raw = [&](int i) { return raw0 + (SM::kRawStages ? i % SM::kRawStages : 0) * SM::kRaw; };
  auto tileK = [&](int i) { return tiles_k + (i % SM::kKTiles) * SM::kTile; };
  auto tileV = [&](int i) { return tiles_v + (i % SM::kVTiles) * SM::kTile; };

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
  constexpr int kAhead = 2;
  TileBlocks<DT, D, kBN> tb(a.L, tid);
#pragma unroll
  for (int t = 0; t < kAhead; ++t) {
    tb.lookup(hp, bt, t, kend, tid);
    if (n_tiles > t) issue_tile(raw(t), tileK(t), tileV(t), tb, a, hp, t, tid);
    ptx::cp_async_commit();
  }
  tb.lookup(hp, bt, kAhead, kend, tid);

  const RowConverter<DT, D, kBN, kThreads> convert(tid);  // int8 / int4 (unused for fp16)
  Rows w;
  w.init(a, q_begin, row0, nrows, qpos0, h, r0, lane % 4);

  if (n_tiles > 0) {
    ptx::cp_async_wait<1>();  // tile 0
    __syncthreads();
    if constexpr (!SM::kDirect) convert(raw(0), 0, tileK(0), 0, kend);
    if constexpr (!SM::kDirect) convert(raw(0), 1, tileV(0), 0, kend);
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
      if constexpr (!SM::kDirect) convert(raw(kt + 1), 0, tileK(kt + 1), kt + 1, kend);
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
    if constexpr (!SM::kDirect)  // its tile's last reader, P.V(kt-1), is done
      if (next) convert(raw(kt + 1), 1, tileV(kt + 1), kt + 1, kend);
    ptx::fence_proxy_async_shared();  // this thread's tile kt+1 writes (stores, cp.async) before the wgmma reads
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(w.o);
    __syncthreads();  // tiles kt+1 complete; both warpgroups are done with tiles kt and raw stage kt+1
  }
  w.store(a, q_begin, row0, nrows, h, r0);
#else
  __trap();  // built without sm_90a: the host never dispatches here (device_runs_sm90a())
#endif
}

template <KvDtype DT, int D>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WgPipe<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_wgmma_kernel<DT, D>), smem);
  prefill_wgmma_kernel<DT, D><<<PrefillTile<kBM>::grid(B, max_q, a.n_heads), kThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_wgmma(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  with_kv_shape(a.L.dtype, a.L.head_dim,
                [&](auto dt, auto d) { launch<decltype(dt)::value, decltype(d)::value>(a, B, max_q, s); });
}

}  // namespace atom::cuda
