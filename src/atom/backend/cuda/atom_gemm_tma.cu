// W4A4 + INT8-outlier GEMM, warp-specialized, fed by TMA (sm_90a): configs 19, 20. Layouts: atom_gemm.h;
// shared parts: atom_gemm_common.cuh, atom_gemm_wg_consumer.cuh; measurements: docs/results.md §12.
// Why a second warp-specialized kernel: the cp.async one (atom_gemm_ws.cu) spends 65-85% of its time at
// M = 256 on its data path alone (results §11b): 128 threads issue per-row 16-byte copies, two steps in
// flight. Here one thread issues two 2D tensor copies per step (the packed A and B tiles of one group,
// 8 KB each), kP - 2 steps ahead of their use.
// One CTA = 3 warpgroups over a 128x128 output tile. A "step" is one 128-deep INT4 group, or the 128-wide
// INT8 outlier tail (O <= 128). Two rings in shared memory:
//   P, kP stages of 16 KB: one step's packed A and B tiles as TMA writes them (64-byte rows, 64B swizzle),
//     or the outlier step's INT8 A tile (128-byte rows, 128B swizzle). p_full: the copies' bytes have
//     landed; p_empty: the producer has unpacked B and the consumers have loaded A into registers.
//   U, kU stages: B as INT8 (16 * q) in wgmma's K-major 128B-swizzled layout, and the fp32 scales.
//   producer (warpgroup 0): step j = wait p_full[j], u_empty[j]; unpack row pt of B (the outlier step:
//     cp.async its INT8 rows), write the scales (loaded kR steps ahead into registers), publish u_full[j];
//     then thread 0 issues the copies of step j + kP - 2 (the stage the consumers freed at step j - 2).
//   consumers (warpgroups 1, 2: rows 0..63 / 64..127): config 11's one-step loop: A unpacked from P
//     straight into wgmma's register fragment (P released right after), 4 x wgmma m64n64k32 s8 per
//     64-column half, half 0 promoted under half 1's wgmma.
// INT4 is unpacked into the high nibble (bytes = 16 * q) with k permuted alike on A and B, as in the
// cp.async kernel: group sums are 256x, s_w is stored / 256 (exact).
#include <cuda_fp16.h>

#include <type_traits>

#include "atom/backend/cuda/atom_gemm_common.cuh"
#include "atom/backend/cuda/atom_gemm_wg_consumer.cuh"
#include "atom/backend/cuda/ptx.cuh"
#include "atom/backend/cuda/tma.h"

namespace atom::cuda::gemm_detail {
namespace {

constexpr int BM = 128, BN = 128, kMaxOutliers = 128;
static_assert(BM == kWgTileM, "the shared promotion assumes 128-row tiles");
constexpr int kThreads = 384, kProducerRegs = 120, kConsumerRegs = 192;
static_assert(128 * kProducerRegs + 256 * kConsumerRegs <= 65536);
constexpr int kTile4 = BM * 64;                 // one packed tile: 128 rows x 64 bytes
constexpr int kPStage = 2 * kTile4;             // A | B packed, or the outlier step's INT8 A (128 x 128)
constexpr int kUStage = BN * 128;               // B as INT8
constexpr int kScBytes = (BM + 2 * BN) * 4;     // s_a[BM], {s_w, -magic * s_w} per column pair (or the row-first layout)
static_assert(kRowScaleFloats * 4 == kScBytes, "both scale layouts fill one stage's scale block");
constexpr int kScalesAhead = 4;                 // producer register ring of scales (steps)

template <int kP, int kU>
struct TmaSmem {
  static constexpr int kPOff = 0, kUOff = kP * kPStage, kScOff = kUOff + kU * kUStage;
  static constexpr int kBarOff = kScOff + kU * kScBytes;
  static constexpr int kBytes = kBarOff + 2 * (kP + kU) * 8 + 1024;  // + slack to align the base to 1024
  static_assert(kBytes <= 227 * 1024, "shared memory");
  static_assert(kPOff % 1024 == 0 && kUOff % 1024 == 0 && kPStage % 1024 == 0 && kUStage % 1024 == 0);
};

// One tile's place in the launch: p.tiles = N tiles x M tiles x splits, N fastest (a 3D grid's order).
struct TileCoords {
  int m0, n0, g_begin, n_groups, n_steps;  // steps: the INT4 groups of the split, + the outlier step in split 0
};
__device__ __forceinline__ TileCoords tile_coords(const Params& p, int tile) {
  const int gx = (p.N + BN - 1) / BN, gy = (p.M + BM - 1) / BM;
  const int bz = tile / (gx * gy), r = tile - bz * gx * gy;
  TileCoords c;
  c.m0 = (r / gx) * BM, c.n0 = (r % gx) * BN, c.g_begin = bz * p.groups_per_split;
  c.n_groups = max(0, min(p.G, c.g_begin + p.groups_per_split) - c.g_begin);
  c.n_steps = c.n_groups + ((bz == 0 && p.O > 0) ? 1 : 0);
  return c;
}
// Walks this CTA's steps in order across its tiles; g counts them (ring slot g % depth, phase g / depth).
struct StepCursor {
  int tile, s, g;
  TileCoords c;
  __device__ __forceinline__ void skip_empty(const Params& p) {
    while (tile < p.tiles && c.n_steps == 0) {
      tile += gridDim.x;
      if (tile < p.tiles) c = tile_coords(p, tile);
    }
  }
  __device__ __forceinline__ void init(const Params& p) {
    tile = blockIdx.x, s = 0, g = 0;
    if (tile < p.tiles) c = tile_coords(p, tile);
    skip_empty(p);
  }
  __device__ __forceinline__ bool valid(const Params& p) const { return tile < p.tiles; }
  __device__ __forceinline__ bool normal() const { return s < c.n_groups; }
  __device__ __forceinline__ void next(const Params& p) {
    ++g;
    if (++s < c.n_steps) return;
    s = 0, tile += gridDim.x;
    if (tile < p.tiles) c = tile_coords(p, tile);
    skip_empty(p);
  }
};

// MODE (diagnostics only, wrong results): bit 0 = no promotion, bit 1 = no B unpacking, bit 2 = no wgmma.
// kRowScales: the row-first scale layout, a step's scales loaded before its wgmma (atom_gemm_wg_consumer.cuh).
template <int kP, int kU, bool kPsums, bool kRowScales, int MODE = 0>
__global__ void __launch_bounds__(kThreads, 1) atom_gemm_tma_kernel(const __grid_constant__ TmaParams tp) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kP >= 3 && kU >= 2, "rings too shallow");
  using L = TmaSmem<kP, kU>;
  constexpr int kAhead = kP - 2;  // steps whose copies are in flight ahead of the producer
  const Params& p = tp.p;
  extern __shared__ uint8_t smem_raw[];
  // the swizzle patterns are those of absolute addresses: align the base to 1024
  uint8_t* smem = smem_raw + ((1024 - (ptx::smem_addr(smem_raw) & 1023)) & 1023);
  uint64_t* p_full = reinterpret_cast<uint64_t*>(smem + L::kBarOff);
  uint64_t* p_empty = p_full + kP;
  uint64_t* u_full = p_empty + kP;
  uint64_t* u_empty = u_full + kU;
  auto P = [&](int g) { return smem + L::kPOff + (g % kP) * kPStage; };
  auto U = [&](int g) { return smem + L::kUOff + (g % kU) * kUStage; };
  auto Sc = [&](int g) { return reinterpret_cast<float*>(smem + L::kScOff + (g % kU) * kScBytes); };

  const int tid = threadIdx.x, wgi = tid / 128;
  if (tid == 0) {
    ptx::tma_prefetch_map(&tp.a4);
    ptx::tma_prefetch_map(&tp.w4);
    if (p.O > 0) ptx::tma_prefetch_map(&tp.a8);
    for (int s = 0; s < kP; ++s) {
      ptx::mbar_init(p_full + s, 1);           // the issuing thread's expect_tx arrival (+ the bytes)
      ptx::mbar_init(p_empty + s, 128 + 256);  // the producer's and the consumers' threads
    }
    for (int s = 0; s < kU; ++s) {
      ptx::mbar_init(u_full + s, 128);
      ptx::mbar_init(u_empty + s, 256);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");  // visible to the async proxy (TMA)
  }
  __syncthreads();

  if (wgi == 0) {
    // ================================ producer ================================
    ptx::setmaxnreg_dec<kProducerRegs>();
    const int pt = tid;
    // the copies of cursor step c into P stage c.g (thread 0 only): the A and B tiles of one group, or the outlier A
    auto issue = [&](const StepCursor& c) {
      const int g = c.g;
      ptx::mbar_wait(p_empty + g % kP, ((g / kP) & 1) ^ 1);
      uint8_t* st = P(g);
      ptx::mbar_arrive_expect_tx(p_full + g % kP, kPStage);
      if (c.normal()) {
        ptx::tma_load_2d(st, &tp.a4, (c.c.g_begin + c.s) * 64, c.c.m0, p_full + g % kP);
        ptx::tma_load_2d(st + kTile4, &tp.w4, (c.c.g_begin + c.s) * 64, c.c.n0, p_full + g % kP);
      } else {
        ptx::tma_load_2d(st, &tp.a8, 0, c.c.m0, p_full + g % kP);
      }
    };
    StepCursor ci;  // the copies, kAhead steps ahead of the unpacking
    ci.init(p);
    if (pt == 0)
      for (int k = 0; k < kAhead && ci.valid(p); ++k, ci.next(p)) issue(ci);

    // this thread's scales of cursor step c (rows past M / N use 0)
    auto load_sc = [&](const StepCursor& c, __half& sa, __half& sw) {
      const __half zero = __ushort_as_half(0);
      if (!c.valid(p)) return;
      const int r = c.c.m0 + pt, n = c.c.n0 + pt;
      if (c.normal()) {
        sa = r < p.M ? p.sa[int64_t(r) * p.G + c.c.g_begin + c.s] : zero;
        sw = n < p.N ? p.sw[int64_t(n) * p.G + c.c.g_begin + c.s] : zero;
      } else {
        sa = r < p.M ? p.sao[r] : zero;
        sw = n < p.N ? p.swo[n] : zero;
      }
    };
    // cursor step c: unpack B (or copy the INT8 outlier B), write the scales, publish U
    auto step = [&](const StepCursor& c, __half sa_h, __half sw_h) {
      const int g = c.g;
      ptx::mbar_wait(p_full + g % kP, (g / kP) & 1);
      ptx::mbar_wait(u_empty + g % kU, ((g / kU) & 1) ^ 1);
      uint8_t* ub = U(g);
      const bool normal = c.normal();
      if (normal && !(MODE & 2)) {  // row pt of B, 16 * q in each byte, k permuted as A's (unpack_int4x8_x16_split)
        const uint8_t* bp = P(g) + kTile4;
        uint4 wq[4];  // all four loads first: one shared-memory latency, not four
#pragma unroll
        for (int k = 0; k < 4; ++k) wq[k] = *reinterpret_cast<const uint4*>(bp + ptx::sw64_off(pt, k));
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          uint4 lo, hi;
          ptx::unpack_int4x8_x16_split(wq[k].x, lo.x, hi.x);
          ptx::unpack_int4x8_x16_split(wq[k].y, lo.y, hi.y);
          ptx::unpack_int4x8_x16_split(wq[k].z, lo.z, hi.z);
          ptx::unpack_int4x8_x16_split(wq[k].w, lo.w, hi.w);
          *reinterpret_cast<uint4*>(ub + ptx::sw128_off(pt, 2 * k)) = lo;
          *reinterpret_cast<uint4*>(ub + ptx::sw128_off(pt, 2 * k + 1)) = hi;
        }
      } else if (!normal) {  // the outlier tail: INT8 B row pt as it is (channels past O zero-filled)
        const bool sw_ok = c.c.n0 + pt < p.N;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const bool ok = k * 16 < p.O && sw_ok;
          ptx::cp_async_16(ub + ptx::sw128_off(pt, k), ok ? p.w8 + int64_t(c.c.n0 + pt) * p.O + k * 16 : p.w8, ok);
        }
        ptx::cp_async_commit();
        ptx::cp_async_wait<0>();
      }
      const float sa = __half2float(sa_h);
      const float sw = __half2float(sw_h) * (normal ? 1.0f / 256.0f : 1.0f);  // normal: sums are 256x (exact)
      float* sc = Sc(g);
      if constexpr (kRowScales) {
        write_row_scales(sc, pt, sa, sw);
      } else {
        sc[pt] = sa;
        sc[BM + (pt >> 1) * 4 + (pt & 1)] = sw;
        sc[BM + (pt >> 1) * 4 + 2 + (pt & 1)] = -kMagic * sw;  // exact: 3 * 2^22 times an fp16 value
      }
      ptx::fence_proxy_async_shared();  // the INT8 B (generic writes, cp.async) is read by wgmma (async proxy)
      ptx::mbar_arrive(u_full + g % kU);
      ptx::mbar_arrive(p_empty + g % kP);
    };
    // The scales of the kScalesAhead steps in flight live in a register ring indexed by compile-time
    // constants (unrolled loop): step j loads step j + R - 1's (cursor cs) into the slot step j - 1 used.
    constexpr int R = kScalesAhead;
    __half sa_q[R], sw_q[R];
#pragma unroll
    for (int u = 0; u < R; ++u) sa_q[u] = sw_q[u] = __ushort_as_half(0);
    StepCursor cs;
    cs.init(p);
#pragma unroll
    for (int u = 0; u < R - 1; ++u) {
      load_sc(cs, sa_q[u], sw_q[u]);
      if (cs.valid(p)) cs.next(p);
    }
    StepCursor cu;
    cu.init(p);
    while (cu.valid(p)) {
#pragma unroll
      for (int u = 0; u < R; ++u) {
        if (cu.valid(p)) {
          load_sc(cs, sa_q[(u + R - 1) % R], sw_q[(u + R - 1) % R]);
          if (cs.valid(p)) cs.next(p);
          step(cu, sa_q[u], sw_q[u]);
          if (pt == 0 && ci.valid(p)) {  // into the stage the consumers freed at step g - 2
            issue(ci);
            ci.next(p);
          }
          cu.next(p);
        }
      }
    }
  } else {
    // ================================ consumers ================================
    ptx::setmaxnreg_inc<kConsumerRegs>();
    const int cw = wgi - 1, ct = tid - 128 * wgi, warp = ct / 32, lane = ct % 32, gq = lane / 4, t = lane % 4;
    const int arow = 64 * cw + 16 * warp + gq;  // this thread's A rows in the tile: arow, arow + 8
    const int Gt = p.G + (p.O > 0 ? 1 : 0);
    int32_t acc0[32], acc1[32];
    float facc[64];
#pragma unroll
    for (int e = 0; e < 32; ++e) acc0[e] = acc1[e] = 0;

    // A's registers for wgmma: logical k 4t..4t+3 / 16+4t.. of k-step kk hold the even / odd elements of
    // packed word 4kk + t, the permutation the producer applies to B. Rows arow and arow + 8 share a swizzle.
    auto load_a = [&](const uint8_t* pa, auto exact, uint32_t (&a)[4][4]) {
      if constexpr (!decltype(exact)::value) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const uint32_t w0 = *reinterpret_cast<const uint32_t*>(pa + ptx::sw64_off(arow, kk) + t * 4);
          const uint32_t w1 = *reinterpret_cast<const uint32_t*>(pa + ptx::sw64_off(arow + 8, kk) + t * 4);
          ptx::unpack_int4x8_x16_split(w0, a[kk][0], a[kk][2]);
          ptx::unpack_int4x8_x16_split(w1, a[kk][1], a[kk][3]);
        }
      } else {  // (channels past O were zero-filled by TMA: all four k-steps run)
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          a[kk][0] = *reinterpret_cast<const uint32_t*>(pa + ptx::sw128_off(arow, 2 * kk) + t * 4);
          a[kk][1] = *reinterpret_cast<const uint32_t*>(pa + ptx::sw128_off(arow + 8, 2 * kk) + t * 4);
          a[kk][2] = *reinterpret_cast<const uint32_t*>(pa + ptx::sw128_off(arow, 2 * kk + 1) + t * 4);
          a[kk][3] = *reinterpret_cast<const uint32_t*>(pa + ptx::sw128_off(arow + 8, 2 * kk + 1) + t * 4);
        }
      }
    };
    // 4 k-steps of one 64-column half into its accumulator, one commit group
    auto mma_half = [&](int32_t (&acc)[32], const uint32_t (&a)[4][4], const uint8_t* ub, int h) {
      if (MODE & 4) return;
      ptx::wgmma_fence_operands(acc);
      ptx::wgmma_fence();
      const uint64_t desc = ptx::wgmma_desc_kmajor_sw128(ub + h * 64 * 128);
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) ptx::wgmma_m64n64k32_s8_rs(acc, a[ks], ptx::wgmma_desc_add(desc, ks * 32), ks > 0 ? 1 : 0);
      ptx::wgmma_commit();
    };
    uint32_t a[4][4];
    // global step g of tile c: group gidx (the outlier step: gidx = G)
    auto consume = [&](int g, const TileCoords& c, int gidx, auto exact) {
      constexpr bool kExact = decltype(exact)::value;
      ptx::mbar_wait(u_full + g % kU, (g / kU) & 1);
      if constexpr (kRowScales) {  // the whole step's scales, before the wgmma's operand reads
        StepScales ss;
        load_step_scales(Sc(g), arow, t, ss);
        ptx::mbar_wait(p_full + g % kP, (g / kP) & 1);
        load_a(P(g), exact, a);
        ptx::mbar_arrive(p_empty + g % kP);
        const uint8_t* ub = U(g);
        mma_half(acc0, a, ub, 0);
        mma_half(acc1, a, ub, 1);
        if (!(MODE & 4)) ptx::wgmma_wait<1>();
        ptx::wgmma_fence_operands(acc0);
        if (!(MODE & 1)) promote_half_rows<kExact, kPsums>(facc, acc0, 0, ss, p, c.m0, c.n0, arow, t, gidx, Gt);
        if (!(MODE & 4)) ptx::wgmma_wait<0>();
        ptx::wgmma_fence_operands(acc1);
        if (!(MODE & 1)) promote_half_rows<kExact, kPsums>(facc, acc1, 1, ss, p, c.m0, c.n0, arow, t, gidx, Gt);
      } else {
        ptx::mbar_wait(p_full + g % kP, (g / kP) & 1);  // (A's bytes: seen directly, not only via the producer)
        load_a(P(g), exact, a);
        ptx::mbar_arrive(p_empty + g % kP);
        const uint8_t* ub = U(g);
        mma_half(acc0, a, ub, 0);
        mma_half(acc1, a, ub, 1);
        HalfScales hs;
        load_half_scales(Sc(g), arow, t, 0, hs);
        if (!(MODE & 4)) ptx::wgmma_wait<1>();
        ptx::wgmma_fence_operands(acc0);
        if (!(MODE & 1)) promote_half<kExact, kPsums>(facc, acc0, 0, hs, p, c.m0, c.n0, arow, t, gidx, Gt);
        load_half_scales(Sc(g), arow, t, 1, hs);
        if (!(MODE & 4)) ptx::wgmma_wait<0>();
        ptx::wgmma_fence_operands(acc1);
        if (!(MODE & 1)) promote_half<kExact, kPsums>(facc, acc1, 1, hs, p, c.m0, c.n0, arow, t, gidx, Gt);
      }
      ptx::mbar_arrive(u_empty + g % kU);
    };
    int g = 0;
    for (int tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
      const TileCoords c = tile_coords(p, tile);
#pragma unroll
      for (int e = 0; e < 64; ++e) facc[e] = 0.0f;
      for (int i = 0; i < c.n_groups; ++i) consume(g++, c, c.g_begin + i, std::false_type{});
      if (c.n_steps > c.n_groups) consume(g++, c, p.G, std::true_type{});
      // (the producer runs ahead into the next tile meanwhile)
      for_each_out_pair(p, facc, c.m0, c.n0, arow, t, [&](int64_t o, int col, float v0, float v1) { store_out_pair(p, o, col, v0, v1); });
    }
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (see atom_gemm_wgmma_available())
#endif
}

template <int kP, int kU, bool kPsums, bool kRowScales, int MODE = 0>
KernelLaunch tma_launch(bool persistent = false) {
  KernelLaunch k{nullptr, BM, BN, kThreads, TmaSmem<kP, kU>::kBytes, 1};
  k.tma_fn = atom_gemm_tma_kernel<kP, kU, kPsums, kRowScales, MODE>;
  k.persistent = persistent;
  return k;
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

}  // namespace

bool tma_supports(const Params& p) {
  return p.O <= kMaxOutliers && aligned16(p.a4) && aligned16(p.w4) && (p.O == 0 || aligned16(p.a8));
}

TmaParams make_tma_params(const Params& p) {
  TmaParams tp{};
  tp.p = p;
  const uint64_t rb = uint64_t(p.G) * 64;  // q4 row bytes
  tma_map_2d_u8(&tp.a4, p.a4, rb, uint64_t(p.M), rb, 64, BM, TmaSwizzle::k64B);
  tma_map_2d_u8(&tp.w4, p.w4, rb, uint64_t(p.N), rb, 64, BN, TmaSwizzle::k64B);
  if (p.O > 0) tma_map_2d_u8(&tp.a8, p.a8, uint64_t(p.O), uint64_t(p.M), uint64_t(p.O), 128, BM, TmaSwizzle::k128B);
  return tp;
}

// variant 0: kP = 6, kU = 3 (4 steps = 64 KB of copies in flight); variant 1: the same with the row-first
// scales loaded before the wgmma; variant 2: variant 1 on a persistent grid (one CTA per SM, tiles strided). (A 10 + 3 ring was slower than 6 + 3 on every row, and an 8 + 4 one's psums
// instance failed on K >= 4096: results.md §12a.) Diagnostic modes (`mode` != 0, timing only) run on
// variant 0, or on variant 1 for mode + 8.
KernelLaunch tma_kernel(bool psums, int variant, int mode) {
  switch (mode) {
    case 1: return tma_launch<6, 3, false, false, 1>();
    case 2: return tma_launch<6, 3, false, false, 2>();
    case 4: return tma_launch<6, 3, false, false, 4>();
    case 5: return tma_launch<6, 3, false, false, 5>();
    case 9: return tma_launch<6, 3, false, true, 1>();
    case 13: return tma_launch<6, 3, false, true, 5>();
    default: break;
  }
  if (variant >= 1) return psums ? tma_launch<6, 3, true, true>(variant == 2) : tma_launch<6, 3, false, true>(variant == 2);
  return psums ? tma_launch<6, 3, true, false>() : tma_launch<6, 3, false, false>();
}

}  // namespace atom::cuda::gemm_detail
