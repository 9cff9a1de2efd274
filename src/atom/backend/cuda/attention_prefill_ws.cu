// Prefill / chunked-prefill attention, warp-specialized (PrefillKernel::kWgmmaWs, sm_90a): FA3's structure on
// the paged cache, with the tiles and products of attention_prefill_wgmma.cuh.
//
// CTA = 3 warpgroups, persistent: one CTA per SM walks its share of the work items (128 query rows of one
// head each, longest first: WsItems), the producer running ahead across items, so one item's start (block-table
// lookups, the first tiles' fill, Q's loads) hides under the previous one's products.
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

#include <algorithm>

#include "atom/backend/cuda/attention_prefill_wgmma.cuh"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {
using namespace wgprefill;

constexpr int kWsThreads = 3 * 128;
constexpr int kWsBN = 64;  // keys per tile (128 would need more registers than the consumers have)
constexpr int kStages = 4;
// Registers per thread after setmaxnreg: the int producer dequantizes, the fp16 one only copies (56 spilled
// 48 bytes at D = 128 once it walked persistent items; 64 leaves the consumers their 224).
template <KvDtype DT>
struct WsRegs {
  static constexpr int kProducer = DT == KvDtype::F16 ? 64 : 96;
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

// The work items, (query tile counted from a sequence's end, sequence, head), heaviest first: every head's and
// sequence's last query tile, then the ones before (causal work grows with the tile index); consecutive items are
// consecutive heads, so the query heads of one KV head run side by side (their K / V stay in L2). The kernel is
// persistent: CTA c of G takes item c of round 0, G - 1 - c of round 1, c of round 2, ...: the snake evens out
// each round's spread (static longest-first scheduling; no global counter to reset between launches).
struct WsItems {
  int n_items, G, c, n_x, n_heads;
  __device__ WsItems(int B, int n_heads_, int n_x_)
      : n_items(n_x_ * B * n_heads_), G(int(gridDim.x)), c(int(blockIdx.x)), n_x(n_x_), n_heads(n_heads_) {}
  // The CTA's next active item from round k on (k moves past it); false when none is left. Producer and
  // consumers walk the same sequence.
  __device__ bool next(const PrefillArgs& a, int& k, PrefillTile<kBM>& t) const {
    for (; k * G < n_items; ++k) {
      const int i = k * G + ((k & 1) ? G - 1 - c : c);
      if (i >= n_items) continue;
      const int bh = i % (n_items / n_x);
      t = PrefillTile<kBM>(a, i / (n_items / n_x), n_x, bh / n_heads, bh % n_heads);
      if (t.active) {
        ++k;
        return true;
      }
    }
    return false;
  }
};

template <KvDtype DT, int D>
__global__ void __launch_bounds__(kWsThreads, 1) prefill_ws_kernel(const PrefillArgs a, int B, int n_x) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using WS = WsSmem<DT, D>;
  using SM = typename WS::SM;
  using Rows = WgRows<DT, D, kWsBN>;
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const stages = smem + ((1024u - ptx::smem_addr(smem)) & 1023u);  // 1 KiB aligned (the swizzle)
  uint8_t* const raw0 = stages + kStages * WS::kStage;                       // int: two raw stages
  uint64_t* const full = reinterpret_cast<uint64_t*>(raw0 + WS::kRawStages * SM::kRaw);
  uint64_t* const empty = full + kStages;
  // Buffers by the CTA's running tile count g (over all its items): stage g % kStages, lap g / kStages.
  auto tileK = [&](int g) { return stages + (g % kStages) * WS::kStage; };
  auto tileV = [&](int g) { return tileK(g) + SM::kTile; };
  auto raw = [&](int g) { return raw0 + (g & 1) * SM::kRaw; };

  const WsItems items(B, a.n_heads, n_x);
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
    TileBlocks<DT, D, kWsBN, 128> tb(a.L, tid);
    const RowConverter<DT, D, kWsBN, 128> convert(tid);  // int8 / int4 (unused for fp16)
    auto wait_free = [&](int g) { ptx::mbar_wait(&empty[g % kStages], ((g / kStages) & 1) ^ 1); };  // lap 0: at once
    auto publish = [&](int g) {  // this thread's writes of tile g's stage are done (copies waited / stores)
      ptx::fence_proxy_async_shared();
      ptx::mbar_arrive(&full[g % kStages]);
    };
    int g = 0, k = 0;
    PrefillTile<kBM> t;
    while (items.next(a, k, t)) {
      const int32_t* bt = a.block_tables + int64_t(t.b) * a.max_blocks;
      const HeadPages hp(a.L, a.pool, a.layer, t.hk);
      const int kend = t.kend, n_tiles = (kend + kWsBN - 1) / kWsBN;  // >= 1: kend > qpos0 >= 0
      tb.lookup(hp, bt, 0, kend, tid);
      if constexpr (SM::kDirect) {  // fp16: the copies land in the stage itself
        for (int kt = 0; kt < n_tiles; ++kt) {
          wait_free(g + kt);
          issue_tile(nullptr, tileK(g + kt), tileV(g + kt), tb, a, hp, kt, tid);
          ptx::cp_async_commit();
          tb.lookup(hp, bt, kt + 1, kend, tid);
          if (kt > 0) {
            ptx::cp_async_wait<1>();  // tile kt-1 (tile kt stays in flight)
            publish(g + kt - 1);
          }
        }
        ptx::cp_async_wait<0>();
        publish(g + n_tiles - 1);
      } else {  // int8 / int4: raw stage (a tile ahead), then dequantized into the stage
        issue_tile(raw(g), nullptr, nullptr, tb, a, hp, 0, tid);
        ptx::cp_async_commit();
        tb.lookup(hp, bt, 1, kend, tid);
        for (int kt = 0; kt < n_tiles; ++kt) {
          if (kt + 1 < n_tiles) {  // its raw stage held tile g+kt-1, converted before the last producer sync
            issue_tile(raw(g + kt + 1), nullptr, nullptr, tb, a, hp, kt + 1, tid);
            tb.lookup(hp, bt, kt + 2, kend, tid);
          }
          ptx::cp_async_commit();
          ptx::cp_async_wait<1>();                  // this thread's copies of raw tile kt
          ptx::named_bar_sync(kProducerBar, 128);   // ... and every producer thread's
          wait_free(g + kt);
          convert(raw(g + kt), 0, tileK(g + kt), kt, kend);
          convert(raw(g + kt), 1, tileV(g + kt), kt, kend);
          publish(g + kt);
          ptx::named_bar_sync(kProducerBar, 128);   // raw stage read by everyone: free for tile g+kt+2
        }
      }
      g += n_tiles;
    }
  } else {
    // ---- consumers ----
    ptx::setmaxnreg_inc<WsRegs<DT>::kConsumer>();
    const int cw = wg - 1;
    const int r0 = 64 * cw + 16 * warp + lane / 4;
    auto acquire = [&](int g) {
      ptx::mbar_wait(&full[g % kStages], (g / kStages) & 1);
      ptx::fence_proxy_async_shared();
    };
    auto release = [&](int g) {  // after this warp's wgmma_wait: its reads of the stage are done
      if (lane == 0) ptx::mbar_arrive(&empty[g % kStages]);
    };
    auto turn_begin = [&] { ptx::named_bar_sync(kTurnBar + cw, 256); };
    auto turn_end = [&] { ptx::named_bar_arrive(kTurnBar + 1 - cw, 256); };  // the other warpgroup's turn

    int g = 0, k = 0;
    PrefillTile<kBM> t, next;
    bool more = items.next(a, k, t);
    if (!more) return;  // (uniform per CTA: no item is active)
    Rows w;
    w.init(a, t.q_begin, t.row0, t.nrows, t.qpos0, t.h, r0, lane % 4);
    if (cw == 1) ptx::named_bar_arrive(kTurnBar, 256);  // warpgroup 0 takes the first turn
    typename Rows::PFrag pf;
    float corr[2];
    while (true) {
      const int n_tiles = (t.kend + kWsBN - 1) / kWsBN;
      more = items.next(a, k, next);
      // Once S of the item's last tile is done, Q's registers are free: the next item's rows load under the
      // last P.V and the store.
      auto prefetch_q = [&] {
        if (more) w.load_q(a, next.q_begin, next.row0, next.nrows, next.qpos0, next.h, r0);
      };
      acquire(g);
      turn_begin();
      ptx::wgmma_fence();
      w.issue_s(tileK(g));
      ptx::wgmma_commit();
      turn_end();
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.s);
      w.softmax(0, a.scale_log2, corr);  // O is still 0: no rescale
      if (n_tiles == 1) prefetch_q();
      w.pack_p(pf);
      for (int kt = 1; kt < n_tiles; ++kt) {
        acquire(g + kt);
        turn_begin();
        ptx::wgmma_fence();
        w.issue_s(tileK(g + kt));
        ptx::wgmma_commit();  // group: S(kt)
        w.issue_pv(tileV(g + kt - 1), pf);
        ptx::wgmma_commit();  // group: P.V(kt-1)
        turn_end();
        ptx::wgmma_wait<1>();
        ptx::wgmma_fence_operands(w.s);
        w.softmax(kt, a.scale_log2, corr);  // under P.V(kt-1) (it reads pf, not s)
        if (kt == n_tiles - 1) prefetch_q();
        ptx::wgmma_wait<0>();
        ptx::wgmma_fence_operands(w.o);
        release(g + kt - 1);
        w.rescale_o(corr);
        w.pack_p(pf);
      }
      turn_begin();
      ptx::wgmma_fence();
      w.issue_pv(tileV(g + n_tiles - 1), pf);
      ptx::wgmma_commit();
      if (cw == 0 || more) turn_end();  // warpgroup 1's very last turn hands over to no one (no arrival left dangling)
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(w.o);
      release(g + n_tiles - 1);
      w.store(a, t.q_begin, t.row0, t.nrows, t.h, r0);
      if (!more) break;
      g += n_tiles;
      t = next;
      w.reset();
    }
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (device_runs_sm90a())
#endif
}

template <KvDtype DT, int D>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WsSmem<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_ws_kernel<DT, D>), smem);
  const int n_x = PrefillTile<kBM>::n_x(max_q);
  const int64_t n_items = int64_t(n_x) * B * a.n_heads;
  if (n_items == 0) return;
  const int grid = int(std::min<int64_t>(n_items, device_sm_count()));  // one CTA per SM (registers)
  prefill_ws_kernel<DT, D><<<grid, kWsThreads, smem, s>>>(a, B, n_x);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  with_kv_shape(a.L.dtype, a.L.head_dim,
                [&](auto dt, auto d) { launch<decltype(dt)::value, decltype(d)::value>(a, B, max_q, s); });
}

}  // namespace atom::cuda
