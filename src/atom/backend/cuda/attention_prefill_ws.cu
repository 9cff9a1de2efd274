// Prefill / chunked-prefill attention, warp-specialized (PrefillKernel::kWgmmaWs, sm_90a): FA3's structure on
// the paged cache, with the tiles and products of attention_prefill_wgmma.cuh.
//
// CTA = 3 warpgroups, persistent: one CTA per SM walks its share of the query tiles (128 rows of one head
// each, in pairs of equal causal work: WsItems), the producer running ahead across tiles, so one tile's start
// (block-table lookups, the first K / V fill, Q's loads) hides under the previous one's products.
//   Warpgroup 0, the producer (WsRegs<DT>::kProducer registers) fills a ring of K/V tile pairs (WsSmem::kStages):
//     fp16: cp.async's each 64-key tile pair straight into its stage (key rows, 128-byte swizzle, as the wgmma
//       kernel lays them out); kWgmmaWsTma: thread 0 copies full tiles by TMA instead (kTma below);
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
#include "atom/backend/cuda/prefill_schedule.h"
#include "atom/backend/cuda/tma.h"

namespace atom::cuda {
namespace {
using namespace wgprefill;

constexpr int kWsThreads = 3 * 128;
constexpr int kWsBN = 64;  // keys per tile (128 would need more registers than the consumers have)
// Registers per thread after setmaxnreg, within the launch's 168 (ptx::register_split_fits: 128 x 64 + 256 x 224
// hung the fp16 consumers). The int producer dequantizes, the fp16 one only copies: 64 / 216 spills nothing;
// 56 / 224 spilled 48 bytes in the producer and measured the same (results.md §16).
template <KvDtype DT>
struct WsRegs {
  static constexpr int kProducer = DT == KvDtype::F16 ? 64 : 96;
  static constexpr int kConsumer = DT == KvDtype::F16 ? 216 : 200;
  static_assert(ptx::register_split_fits(kWsThreads, kProducer, kConsumer));
};
// Named barriers 1 and 2: consumer warpgroup w waits on 1 + w for its turn; the other arrives there.
// Barrier 3: the producer warpgroup's own (int caches: the raw stage's copies landed / were read).
constexpr int kTurnBar = 1, kProducerBar = 3;

template <KvDtype DT, int D>
struct WsSmem {
  using SM = WgSmem<DT, D, kWsBN>;
  // Ring depth: the consumers hold two to three stages (S(kt) and P.V(kt-1) of two warpgroups half a turn
  // apart), and an int tile is dequantized only once its stage is free. With 4 stages the int8 profile had both
  // sides waiting (consumers on "full" 22% of their samples, the producer on "empty" 12%: results.md §16g),
  // so int caches take 5 (198 KB at int8 D = 128). NOT YET MEASURED against 4 (§16h).
  static constexpr int kStages = DT == KvDtype::F16 ? 4 : 5;
  static constexpr int kRawStages = SM::kRaw == 0 ? 0 : 2;
  // K tile, then V tile: 1 KiB multiples, so both keep the swizzle's alignment
  static constexpr size_t kStage = 2 * SM::kTile;
  static_assert(SM::kTile % 1024 == 0);
  static constexpr size_t kBars = 2 * kStages * sizeof(uint64_t);
  static constexpr size_t kBytes = 1024 + kStages * kStage + kRawStages * SM::kRaw + kBars;
  static_assert(kBytes <= 227 * 1024, "more shared memory than an sm_90 CTA may opt into");
};

// The CTA's share of the query tiles, in prefill_schedule.h's order (pairs of equal causal work, head-major).
struct WsItems {
  PrefillSchedule sched;
  int n_x;
  __device__ WsItems(int B, int n_heads, int n_x_, bool paired)
      : sched(B, n_heads, n_x_, paired, int(gridDim.x), int(blockIdx.x)), n_x(n_x_) {}
  // The CTA's next tile from cursor u on; false when none is left.
  __device__ bool next(const PrefillArgs& a, int& u, PrefillTile<kBM>& t) const {
    int b, h, row_tile;
    auto tiles_of = [&](int bb) { return (a.cu_q[bb + 1] - a.cu_q[bb] + kBM - 1) / kBM; };
    if (!sched.next(u, tiles_of, b, h, row_tile)) return false;
    t = PrefillTile<kBM>(a, n_x - 1 - row_tile, n_x, b, h);
    return true;
  }
};

// kTma (fp16 only, PrefillKernel::kWgmmaWsTma): `rows` maps the pool as rows of head_dim fp16 values (every K and
// V row of every block, a block's K rows then its V rows), in boxes of 128 bytes x page_size rows with the
// 128-byte swizzle: one box is one page's rows of one 64-element atom column, landing in the tile exactly where
// the cp.async fill puts them (tile_swz is the TMA pattern on a 1 KiB-aligned tile).
template <KvDtype DT, int D, bool kTma>
__global__ void __launch_bounds__(kWsThreads, 1)
    prefill_ws_kernel(const PrefillArgs a, int B, int n_x, bool paired, const __grid_constant__ CUtensorMap rows) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using WS = WsSmem<DT, D>;
  using SM = typename WS::SM;
  constexpr int kStages = WS::kStages;
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

  const WsItems items(B, a.n_heads, n_x, paired);
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
    if constexpr (kTma) {
      if (tid == 0) ptx::tma_prefetch_map(&rows);
    }
    int g = 0, u = 0;  // running tile count (the ring's stages and phases), WsItems cursor
    PrefillTile<kBM> t;
    while (items.next(a, u, t)) {
      const int32_t* bt = a.block_tables + int64_t(t.b) * a.max_blocks;
      const HeadPages hp(a.L, a.pool, a.layer, t.hk);
      const int kend = t.kend, n_tiles = (kend + kWsBN - 1) / kWsBN;  // >= 1: kend > qpos0 >= 0
      if constexpr (kTma) {
        // Full tiles: thread 0 copies each page's K and V rows by TMA, the stage's "full" phase completing on
        // the bytes; the other threads only arrive. A partial last tile goes by cp.async, zero-filled past kend
        // (stale rows there may hold NaN). The full tiles' page indices are read a tile ahead (dependent loads).
        const int n_full = kend / kWsBN, ppt = kWsBN >> hp.shift, P = a.L.page_size;
        const int v_rows = int(a.L.v_values() / SM::kRowBytes);  // a block's V rows follow its K rows
        int pg[4] = {0, 0, 0, 0};  // tile kt's pages (thread 0)
        auto load_pages = [&](int kt) {
#pragma unroll
          for (int j = 0; j < 4; ++j) pg[j] = j < ppt && kt < n_full ? bt[kt * ppt + j] : 0;
        };
        if (tid == 0) load_pages(0);
        for (int kt = 0; kt < n_tiles; ++kt) {
          wait_free(g + kt);
          uint64_t* const bar = &full[(g + kt) % kStages];
          if (kt < n_full) {
            if (tid == 0) {
              ptx::mbar_arrive_expect_tx(bar, uint32_t(2 * SM::kTile));
#pragma unroll
              for (int j = 0; j < 4; ++j) {  // (unrolled: pg stays in registers)
                if (j >= ppt) break;
                const int row = int((hp.block(pg[j]) - a.pool) / SM::kRowBytes);  // page pg[j]'s first K row
                const int dst = j * P * 128;  // page j's first key row
#pragma unroll
                for (int c = 0; c < D / 64; ++c) {
                  ptx::tma_load_2d(tileK(g + kt) + c * SM::kKAtom + dst, &rows, c * 128, row, bar);
                  ptx::tma_load_2d(tileV(g + kt) + c * SM::kKAtom + dst, &rows, c * 128, row + v_rows, bar);
                }
              }
              load_pages(kt + 1);
            } else {
              ptx::mbar_arrive(bar);
            }
          } else {  // (looked up here, not a tile ahead: its blocks would stay live through the TMA loop)
            tb.lookup(hp, bt, kt, kend, tid);
            issue_tile(nullptr, tileK(g + kt), tileV(g + kt), tb, a, hp, kt, tid);
            ptx::cp_async_commit();
            ptx::cp_async_wait<0>();
            publish(g + kt);
          }
        }
        g += n_tiles;
        continue;
      }
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

    int g = 0, u = 0;  // running tile count (the ring's stages and phases), WsItems cursor
    PrefillTile<kBM> t, next;
    bool more = items.next(a, u, t);
    if (!more) return;  // (uniform per CTA: no item is active)
    Rows w;
    w.init(a, t.q_begin, t.row0, t.nrows, t.qpos0, t.h, r0, lane % 4);
    if (cw == 1) ptx::named_bar_arrive(kTurnBar, 256);  // warpgroup 0 takes the first turn
    typename Rows::PFrag pf;
    float corr[2];
    while (true) {
      const int n_tiles = (t.kend + kWsBN - 1) / kWsBN;
      more = items.next(a, u, next);
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

template <KvDtype DT, int D, bool kTma>
void launch_as(const PrefillArgs& a, int B, int n_x, bool paired, int grid, const CUtensorMap& rows, cudaStream_t s) {
  constexpr size_t smem = WsSmem<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_ws_kernel<DT, D, kTma>), smem);
  prefill_ws_kernel<DT, D, kTma><<<grid, kWsThreads, smem, s>>>(a, B, n_x, paired, rows);
  ATOM_CUDA_CHECK_LAUNCH();
}

template <KvDtype DT, int D>
void launch(const PrefillArgs& a, int B, int max_q, bool tma_fill, cudaStream_t s) {
  const int n_x = PrefillTile<kBM>::n_x(max_q);
  if (int64_t(n_x) * B * a.n_heads == 0) return;
  const int sms = device_sm_count();  // one CTA per SM (registers)
  const bool paired = PrefillSchedule::paired_for(B, a.n_heads, n_x, sms);
  const int grid = std::min(PrefillSchedule::n_units_for(B, a.n_heads, n_x, paired), sms);
  alignas(64) CUtensorMap rows{};  // (unused without TMA)
  if constexpr (DT == KvDtype::F16) {
    const int64_t row_bytes = a.L.row_bytes(), n_rows = a.L.total_bytes() / row_bytes;
    if (tma_fill && n_rows < (int64_t(1) << 31)) {  // TMA row coordinates are int32 (else the cp.async fill)
      tma_map_2d_u8(&rows, a.pool, uint64_t(row_bytes), uint64_t(n_rows), uint64_t(row_bytes), 128,
                    uint32_t(a.L.page_size), TmaSwizzle::k128B);
      launch_as<DT, D, true>(a, B, n_x, paired, grid, rows, s);
      return;
    }
  }
  launch_as<DT, D, false>(a, B, n_x, paired, grid, rows, s);
}

}  // namespace

void launch_prefill_ws(const PrefillArgs& a, int B, int max_q, bool tma_fill, cudaStream_t s) {
  with_kv_shape(a.L.dtype, a.L.head_dim, [&](auto dt, auto d) {
    launch<decltype(dt)::value, decltype(d)::value>(a, B, max_q, tma_fill, s);
  });
}

}  // namespace atom::cuda
