// Prefill / chunked-prefill attention for fp16 caches, warp-specialized (PrefillKernel::kWgmmaWs, sm_90a):
// FA3's structure on the paged cache, with the tiles and products of attention_prefill_wgmma.cuh.
//
// CTA = 3 warpgroups over 128 query rows of one head.
//   Warpgroup 0, the producer (kProducerRegs registers): cp.async's each 64-key K/V tile pair into a ring of
//     kStages stages (key rows, 128-byte swizzle, as the wgmma kernel lays them out). Once a tile's copies have
//     landed it fences them for the async proxy and arrives on the stage's "full" mbarrier; before it refills
//     a stage it waits on the stage's "empty" mbarrier. Block-table entries are looked up a tile ahead.
//   Warpgroups 1 and 2, the consumers (kConsumerRegs registers): 64 query rows each (WgRows). Iteration kt
//     issues S(kt) and P.V(kt-1) as one turn at the tensor cores, then runs the softmax of tile kt while
//     P.V(kt-1) runs (the overlapped schedule's intra-warpgroup overlap). Turns alternate between the two
//     warpgroups through two named barriers, so one warpgroup's softmax runs under the other's GEMMs (FA3's
//     ping-pong). The consumers meet no CTA barrier after the start: the full / empty mbarriers are the only
//     coupling to the producer.
#include <cuda_fp16.h>

#include "atom/backend/cuda/attention_prefill_wgmma.cuh"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {
using namespace wgprefill;

constexpr int kWsThreads = 3 * 128;
constexpr int kWsBN = 64;  // keys per tile (128 would need more registers than kConsumerRegs)
constexpr int kStages = 4;
constexpr int kProducerRegs = 56, kConsumerRegs = 224;
static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= 65536);
// Named barriers 1 and 2: consumer warpgroup w waits on 1 + w for its turn; the other arrives there.
constexpr int kTurnBar = 1;

template <int D>
struct WsSmem {
  using SM = WgSmem<KvDtype::F16, D, kWsBN>;
  static constexpr size_t kStage = 2 * SM::kTileK;  // K tile, then V tile (1 KiB multiples: alignment kept)
  static constexpr size_t kBars = 2 * kStages * sizeof(uint64_t);
  static constexpr size_t kBytes = 1024 + kStages * kStage + kBars;
};

template <int D>
__global__ void __launch_bounds__(kWsThreads, 1) prefill_ws_kernel(const PrefillArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using WS = WsSmem<D>;
  using SM = typename WS::SM;
  using Rows = WgRows<KvDtype::F16, D, kWsBN>;
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const stages = smem + ((1024u - ptx::smem_addr(smem)) & 1023u);  // 1 KiB aligned (the swizzle)
  uint64_t* const full = reinterpret_cast<uint64_t*>(stages + kStages * WS::kStage);
  uint64_t* const empty = full + kStages;
  auto tileK = [&](int i) { return stages + (i % kStages) * WS::kStage; };
  auto tileV = [&](int i) { return tileK(i) + SM::kTileK; };

  // Heaviest (latest) query tiles first: causal work grows with the tile index.
  const int qt = gridDim.x - 1 - blockIdx.x, b = blockIdx.y, h = blockIdx.z, hk = h / a.group;
  const int q_begin = a.cu_q[b], nq = a.cu_q[b + 1] - q_begin;
  const int row0 = qt * kBM;
  if (row0 >= nq) return;  // uniform per CTA
  const int len = a.seq_lens[b];
  const int nrows = min(kBM, nq - row0);
  const int qpos0 = len - nq + row0;
  const int kend = min(len, qpos0 + nrows);
  const int n_tiles = (kend + kWsBN - 1) / kWsBN;  // >= 1: kend > qpos0 >= 0
  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;

  if (tid == 0) {
    for (int i = 0; i < kStages; ++i) {
      ptx::mbar_init(&full[i], 128);  // every producer thread, once its copies of the tile have landed
      ptx::mbar_init(&empty[i], 8);   // lane 0 of each consumer warp, once its P.V of the tile is done
    }
  }
  __syncthreads();

  if (wg == 0) {
    // ---- producer ----
    ptx::setmaxnreg_dec<kProducerRegs>();
    const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
    const HeadPages hp(a.L, a.pool, a.layer, hk);
    TileBlocks<KvDtype::F16, D, kWsBN, 128> tb;
    tb.lookup(hp, bt, 0, kend, tid);
    auto publish = [&](int kt) {  // this thread's copies of tile kt have landed (the caller waited)
      ptx::fence_proxy_async_shared();
      ptx::mbar_arrive(&full[kt % kStages]);
    };
    for (int kt = 0; kt < n_tiles; ++kt) {
      ptx::mbar_wait(&empty[kt % kStages], ((kt / kStages) & 1) ^ 1);  // first lap: passes at once
      issue_tile(nullptr, tileK(kt), tileV(kt), tb, a, hp, kt, tid);
      ptx::cp_async_commit();
      tb.lookup(hp, bt, kt + 1, kend, tid);
      if (kt > 0) {
        ptx::cp_async_wait<1>();  // tile kt-1 (tile kt stays in flight)
        publish(kt - 1);
      }
    }
    ptx::cp_async_wait<0>();
    publish(n_tiles - 1);
  } else {
    // ---- consumers ----
    ptx::setmaxnreg_inc<kConsumerRegs>();
    const int cw = wg - 1;
    const int r0 = 64 * cw + 16 * warp + lane / 4;
    Rows w;
    w.init(a, q_begin, row0, nrows, qpos0, h, r0, lane % 4);
    auto acquire = [&](int kt) {
      ptx::mbar_wait(&full[kt % kStages], (kt / kStages) & 1);
      ptx::fence_proxy_async_shared();
    };
    auto release = [&](int kt) {  // after this warp's wgmma_wait: its reads of the stage are done
      if (lane == 0) ptx::mbar_arrive(&empty[kt % kStages]);
    };
    auto turn_begin = [&] { ptx::named_bar_sync(kTurnBar + cw, 256); };
    auto turn_end = [&] { ptx::named_bar_arrive(kTurnBar + 1 - cw, 256); };  // the other warpgroup's turn
    if (cw == 1) ptx::named_bar_arrive(kTurnBar, 256);  // warpgroup 0 takes the first turn

    typename Rows::PFrag pf;
    float corr[2];
    acquire(0);
    turn_begin();
    ptx::wgmma_fence();
    w.issue_s(tileK(0));
    ptx::wgmma_commit();
    turn_end();
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(w.s);
    w.softmax(0, a.scale_log2, corr);  // O is still 0: no rescale
    w.pack_p(pf);
    for (int kt = 1; kt < n_tiles; ++kt) {
      acquire(kt);
      turn_begin();
      ptx::wgmma_fence();
      w.issue_s(tileK(kt));
      ptx::wgmma_commit();  // group: S(kt)
      w.issue_pv(tileV(kt - 1), pf);
      ptx::wgmma_commit();  // group: P.V(kt-1)
      turn_end();
      ptx::wgmma_wait<1>();
      ptx::wgmma_fence_operands(w.s);
      w.softmax(kt, a.scale_log2, corr);  // under P.V(kt-1) (it reads pf, not s)
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.o);
      release(kt - 1);
      w.rescale_o(corr);
      w.pack_p(pf);
    }
    turn_begin();
    ptx::wgmma_fence();
    w.issue_pv(tileV(n_tiles - 1), pf);
    ptx::wgmma_commit();
    if (cw == 0) turn_end();  // warpgroup 1's last turn hands over to no one (no arrival left dangling)
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(w.o);
    w.store(a, q_begin, row0, nrows, h, r0);
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (device_runs_sm90a())
#endif
}

template <int D>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WsSmem<D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_ws_kernel<D>), smem);
  const dim3 grid(unsigned((max_q + kBM - 1) / kBM), unsigned(B), unsigned(a.n_heads));
  prefill_ws_kernel<D><<<grid, kWsThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(a.L.dtype == KvDtype::F16, "paged_attention_prefill: the warp-specialized kernel takes fp16 caches");
  if (a.L.head_dim == 128) launch<128>(a, B, max_q, s);
  else launch<64>(a, B, max_q, s);
}

}  // namespace atom::cuda
