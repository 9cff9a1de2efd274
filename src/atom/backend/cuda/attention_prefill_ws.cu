// Prefill / chunked-prefill attention, warp-specialized (PrefillKernel::kWgmmaWs, sm_90a): FA3's structure on
// the paged cache, with the tiles and products of attention_prefill_wgmma.cuh.
//
// CTA = 3 warpgroups over 128 query rows of one head.
//   Warpgroup 0, the producer (WsRegs<DT>::kProducer registers) fills a ring of kStages K/V tile pairs:
//     fp16: cp.async's each 64-key tile pair straight into its stage (key rows, 128-byte swizzle, as the wgmma
//       kernel lays them out);
//     int8 / int4: cp.async's the raw bytes and metadata into one of two raw stages (a tile ahead), then
//       dequantizes them into the stage's K and V tiles, in the fp16 fill's layout (RowConverter; two
//       producer-only named-barrier syncs per tile, since each thread reads chunks others copied).
//     Once a tile is in its stage the producer fences it for the async proxy and arrives on the stage's
//     "full" mbarrier; before it refills a stage it waits on the stage's "empty" mbarrier. Block-table entries
//     are looked up a tile ahead.
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
constexpr int kWsBN = 64;  // keys per tile (128 would need more registers than the consumers have)
constexpr int kStages = 4;
// Registers per thread after setmaxnreg: the int producer dequantizes, the fp16 one only copies (40 spilled
// 48 bytes at D = 128).
template <KvDtype DT>
struct WsRegs {
  static constexpr int kProducer = DT == KvDtype::F16 ? 56 : 96;
  static constexpr int kConsumer = DT == KvDtype::F16 ? 224 : 200;
  static_assert(128 * kProducer + 256 * kConsumer <= 65536);
};
// Named barriers 1 and 2: consumer warpgroup w waits on 1 + w for its turn; the other arrives there.
// Barrier 3: the producer warpgroup's own (int caches: the raw stage's copies landed / were read).
constexpr int kTurnBar = 1, kProducerBar = 3;

template <KvDtype DT, int D>
struct WsSmem {
  using SM = WgSmem<DT, D, kWsBN>;
  static constexpr int kRawStages = SM::kRaw == 0 ? 0 : 2;
  // K tile, then V tile: 1 KiB multiples, so both keep the swizzle's alignment
  static constexpr size_t kStage = 2 * SM::kTile;
  static_assert(SM::kTile % 1024 == 0);
  static constexpr size_t kBars = 2 * kStages * sizeof(uint64_t);
  static constexpr size_t kBytes = 1024 + kStages * kStage + kRawStages * SM::kRaw + kBars;
};

template <KvDtype DT, int D>
__global__ void __launch_bounds__(kWsThreads, 1) prefill_ws_kernel(const PrefillArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using WS = WsSmem<DT, D>;
  using SM = typename WS::SM;
  using Rows = WgRows<DT, D, kWsBN>;
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const stages = smem + ((1024u - ptx::smem_addr(smem)) & 1023u);  // 1 KiB aligned (the swizzle)
  uint8_t* const raw0 = stages + kStages * WS::kStage;                       // int: two raw stages
  uint64_t* const full = reinterpret_cast<uint64_t*>(raw0 + WS::kRawStages * SM::kRaw);
  uint64_t* const empty = full + kStages;
  auto tileK = [&](int i) { return stages + (i % kStages) * WS::kStage; };
  auto tileV = [&](int i) { return tileK(i) + SM::kTile; };
  auto raw = [&](int i) { return raw0 + (i & 1) * SM::kRaw; };

  const PrefillTile<kBM> qtile(a);
  if (!qtile.active) return;  // uniform per CTA
  const int b = qtile.b, h = qtile.h, hk = qtile.hk, q_begin = qtile.q_begin, row0 = qtile.row0, nrows = qtile.nrows,
            qpos0 = qtile.qpos0, kend = qtile.kend;
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
    ptx::setmaxnreg_dec<WsRegs<DT>::kProducer>();
    const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
    const HeadPages hp(a.L, a.pool, a.layer, hk);
    TileBlocks<DT, D, kWsBN, 128> tb(a.L, tid);
    tb.lookup(hp, bt, 0, kend, tid);
    auto wait_free = [&](int kt) { ptx::mbar_wait(&empty[kt % kStages], ((kt / kStages) & 1) ^ 1); };  // lap 0: at once
    auto publish = [&](int kt) {  // this thread's writes of tile kt's stage are done (copies waited / stores)
      ptx::fence_proxy_async_shared();
      ptx::mbar_arrive(&full[kt % kStages]);
    };
    if constexpr (SM::kDirect) {  // fp16: the copies land in the stage itself
      for (int kt = 0; kt < n_tiles; ++kt) {
        wait_free(kt);
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
    } else {  // int8 / int4: raw stage (a tile ahead), then dequantized into the stage
      const RowConverter<DT, D, kWsBN, 128> convert(tid);
      issue_tile(raw(0), nullptr, nullptr, tb, a, hp, 0, tid);
      ptx::cp_async_commit();
      tb.lookup(hp, bt, 1, kend, tid);
      for (int kt = 0; kt < n_tiles; ++kt) {
        if (kt + 1 < n_tiles) {  // its raw stage held tile kt-1, converted before the last producer sync
          issue_tile(raw(kt + 1), nullptr, nullptr, tb, a, hp, kt + 1, tid);
          tb.lookup(hp, bt, kt + 2, kend, tid);
        }
        ptx::cp_async_commit();
        ptx::cp_async_wait<1>();                  // this thread's copies of raw tile kt
        ptx::named_bar_sync(kProducerBar, 128);   // ... and every producer thread's
        wait_free(kt);
        convert(raw(kt), 0, tileK(kt), kt, kend);
        convert(raw(kt), 1, tileV(kt), kt, kend);
        publish(kt);
        ptx::named_bar_sync(kProducerBar, 128);   // raw stage kt read by everyone: free for tile kt+2
      }
    }
  } else {
    // ---- consumers ----
    ptx::setmaxnreg_inc<WsRegs<DT>::kConsumer>();
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

template <KvDtype DT, int D>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WsSmem<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_ws_kernel<DT, D>), smem);
  prefill_ws_kernel<DT, D><<<PrefillTile<kBM>::grid(B, max_q, a.n_heads), kWsThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  with_kv_shape(a.L.dtype, a.L.head_dim,
                [&](auto dt, auto d) { launch<decltype(dt)::value, decltype(d)::value>(a, B, max_q, s); });
}

}  // namespace atom::cuda
