// W4A4 + INT8-outlier GEMM, warp-specialized, fed by TMA (sm_90a): configs 19-23 (23 dispatched). Layouts:
// atom_gemm.h; shared parts: atom_gemm_common.cuh, atom_gemm_wg_consumer.cuh; measurements: docs/results.md
// §12-14. Configs 22/23 (kG = 2) put two groups in each packed stage (128-byte box rows: one issuing thread fills
// ~32 B/clk/SM that way, ~18 with 64-byte rows, results §14a); the description below is kG = 1's.
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
//     64-column half, half 0 promoted under half 1's wgmma. Configs 20/21 (kAInSmem): the producer unpacks A
//     too, into U after B, and the consumers' wgmma read both operands from shared memory.
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
static_assert(ptx::register_split_fits(kThreads, kProducerRegs, kConsumerRegs));
constexpr int kTile4 = BM * 64;                 // one packed tile: 128 rows x 64 bytes
constexpr int kPStage = 2 * kTile4;             // A | B packed, or the outlier step's INT8 A (128 x 128)
constexpr int kUStageB = BN * 128;              // B as INT8 (+ A as INT8 in the kAInSmem variant)
constexpr int kScBytes = (BM + 2 * BN) * 4;     // s_a[BM], {s_w, -magic * s_w} per column pair
constexpr int kScalesAhead = 4;                 // producer register ring of scales (steps)

// kG: groups per packed stage (one TMA step). kG = 2 copies 128-byte box rows (two groups of a row) instead of 64:
// one issuing thread fills ~32 bytes per clock per SM that way against ~18 (bench_tma, results.md §14).
template <int kP, int kU, bool kAInSmem, int kG = 1>
struct TmaSmem {
  static constexpr int kUStage = kUStageB + (kAInSmem ? BM * 128 : 0);
  static constexpr int kPStageBytes = kG * kPStage;  // kG groups of A, then kG groups of B (or the outlier A)
  static constexpr int kPOff = 0, kUOff = kP * kPStageBytes, kScOff = kUOff + kU * kUStage;
  static constexpr int kBarOff = kScOff + kU * kScBytes;
  static constexpr int kBytes = kBarOff + 2 * (kP + kU) * 8 + 1024;  // + slack to align the base to 1024
  static_assert(kBytes <= 227 * 1024, "shared memory");
  static_assert(kPOff % 1024 == 0 && kUOff % 1024 == 0 && kPStageBytes % 1024 == 0 && kUStage % 1024 == 0);
};

// MODE (diagnostics only, wrong results): bit 0 = no promotion, bit 1 = no B unpacking, bit 2 = no wgmma.
// kAInSmem: the producer unpacks A as well (into U, after B), and both wgmma operands come from shared memory:
// the consumers lose A's 16 fragment registers and its unpacking, and (kScalesFirst) load the first half's
// scales before the wgmma instead of behind its operand reads (the 2026-12-03 profile's largest stall).
// kG = 2: a packed stage holds two groups (a "pair"; 128-byte rows, 128B swizzle) and the consumers and the
// unpacking still go one group at a time; group i lives in pair i / 2 at 64 * (i % 2) bytes of each row.
// kF2: the column scales as float2 pairs (atom_gemm_wg_consumer.cuh), half the consumers' scale bytes.
template <int kP, int kU, bool kPsums, bool kAInSmem, bool kScalesFirst, int MODE = 0, int kG = 1, bool kF2 = false>
__global__ void __launch_bounds__(kThreads, 1) atom_gemm_tma_kernel(const __grid_constant__ TmaParams tp) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(kP >= 3 && kU >= 2, "rings too shallow");
  static_assert(kAInSmem || !kScalesFirst, "no registers for the early scales with A in registers");
  static_assert(kG == 1 || (kG == 2 && !kAInSmem), "two-group stages: A in registers only");
  using L = TmaSmem<kP, kU, kAInSmem, kG>;
  constexpr int kUStage = L::kUStage;
  constexpr int kAhead = kP - 2;  // packed stages whose copies are in flight ahead of the producer
  const Params& p = tp.p;
  extern __shared__ uint8_t smem_raw[];
  // the swizzle patterns are those of absolute addresses: align the base to 1024
  uint8_t* smem = smem_raw + ((1024 - (ptx::smem_addr(smem_raw) & 1023)) & 1023);
  uint64_t* p_full = reinterpret_cast<uint64_t*>(smem + L::kBarOff);
  uint64_t* p_empty = p_full + kP;
  uint64_t* u_full = p_empty + kP;
  uint64_t* u_empty = u_full + kU;
  auto P = [&](int q) { return smem + L::kPOff + (q % kP) * L::kPStageBytes; };
  auto U = [&](int i) { return smem + L::kUOff + (i % kU) * kUStage; };
  auto Sc = [&](int i) { return reinterpret_cast<float*>(smem + L::kScOff + (i % kU) * kScBytes); };

  const int tid = threadIdx.x, wgi = tid / 128;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int g_begin = blockIdx.z * p.groups_per_split;
  const int n_groups = max(0, min(p.G, g_begin + p.groups_per_split) - g_begin);
  const int n_steps = n_groups + ((blockIdx.z == 0 && p.O > 0) ? 1 : 0);
  // packed stages: ceil(n_groups / kG) of groups, then the outlier step's own. Group step i -> its stage q(i),
  // its place in it (sub), and whether it is the stage's last (the one that releases it).
  const int n_gstages = (n_groups + kG - 1) / kG, n_pstages = n_gstages + (n_steps > n_groups ? 1 : 0);
  auto q_of = [&](int i) { return i < n_groups ? i / kG : n_gstages; };
  auto sub_of = [&](int i) { return i < n_groups ? i % kG : 0; };
  auto last_of = [&](int i) { return i >= n_groups || i % kG == kG - 1 || i == n_groups - 1; };
  // 16-byte chunk c (0..3) of group sub's 64 bytes in packed row r
  auto packed_off = [&](int r, int sub, int c) { return kG == 1 ? ptx::sw64_off(r, c) : ptx::sw128_off(r, 4 * sub + c); };

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
    // packed stage q's copies (thread 0 only): A and B tiles of groups g_begin + kG q .., or the outlier A. A
    // group past the tensor is zero-filled; one past this split's groups is loaded and never used.
    auto issue = [&](int q) {
      ptx::mbar_wait(p_empty + q % kP, ((q / kP) & 1) ^ 1);
      uint8_t* st = P(q);
      uint64_t* bar = p_full + q % kP;
      if (q < n_gstages) {
        ptx::mbar_arrive_expect_tx(bar, L::kPStageBytes);
        ptx::tma_load_2d(st, &tp.a4, (g_begin + kG * q) * 64, m0, bar);
        ptx::tma_load_2d(st + kG * kTile4, &tp.w4, (g_begin + kG * q) * 64, n0, bar);
      } else {
        ptx::mbar_arrive_expect_tx(bar, kPStage);
        ptx::tma_load_2d(st, &tp.a8, 0, m0, bar);
      }
    };
    if (pt == 0)
      for (int q = 0; q < min(kAhead, n_pstages); ++q) issue(q);

    // this thread's scale rows (rows past M / N read row 0, a valid address, and use 0)
    const bool sa_ok = m0 + pt < p.M, sw_ok = n0 + pt < p.N;
    const __half* sa_src = p.sa + (sa_ok ? int64_t(m0 + pt) * p.G : 0) + g_begin;
    const __half* sw_src = p.sw + (sw_ok ? int64_t(n0 + pt) * p.G : 0) + g_begin;
    auto load_sc = [&](int i, __half& sa, __half& sw) {
      const __half zero = __ushort_as_half(0);
      if (i < n_groups) {
        sa = sa_ok ? sa_src[i] : zero;
        sw = sw_ok ? sw_src[i] : zero;
      } else if (i < n_steps) {
        sa = sa_ok ? p.sao[m0 + pt] : zero;
        sw = sw_ok ? p.swo[n0 + pt] : zero;
      }
    };
    // group sub of packed row pt (64 bytes; 64B or 128B swizzle) -> INT8 row pt (128 bytes, 128B swizzle)
    auto unpack_row = [&](const uint8_t* src, int sub, uint8_t* dst) {
      uint4 wq[4];  // all four loads first: one shared-memory latency, not four
#pragma unroll
      for (int c = 0; c < 4; ++c) wq[c] = *reinterpret_cast<const uint4*>(src + packed_off(pt, sub, c));
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        uint4 lo, hi;
        ptx::unpack_int4x8_x16_split(wq[c].x, lo.x, hi.x);
        ptx::unpack_int4x8_x16_split(wq[c].y, lo.y, hi.y);
        ptx::unpack_int4x8_x16_split(wq[c].z, lo.z, hi.z);
        ptx::unpack_int4x8_x16_split(wq[c].w, lo.w, hi.w);
        *reinterpret_cast<uint4*>(dst + ptx::sw128_off(pt, 2 * c)) = lo;
        *reinterpret_cast<uint4*>(dst + ptx::sw128_off(pt, 2 * c + 1)) = hi;
      }
    };
    // step j: unpack B (or copy the INT8 outlier B), write the scales, publish U; issue step j + kAhead
    auto step = [&](int j, __half sa_h, __half sw_h) {
      const int q = q_of(j);
      ptx::mbar_wait(p_full + q % kP, (q / kP) & 1);
      ptx::mbar_wait(u_empty + j % kU, ((j / kU) & 1) ^ 1);
      uint8_t* ub = U(j);
      const bool normal = j < n_groups;
      if (normal && !(MODE & 2)) {  // row pt of B (and of A), 16 * q in each byte, k permuted alike (unpack_int4x8_x16_split)
        unpack_row(P(q) + kG * kTile4, sub_of(j), ub);
        if constexpr (kAInSmem) unpack_row(P(q), 0, ub + kUStageB);
      } else if (!normal) {  // the outlier tail: INT8 B row pt as it is (channels past O zero-filled)
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const bool ok = c * 16 < p.O && sw_ok;
          ptx::cp_async_16(ub + ptx::sw128_off(pt, c), ok ? p.w8 + int64_t(n0 + pt) * p.O + c * 16 : p.w8, ok);
        }
        ptx::cp_async_commit();
        ptx::cp_async_wait<0>();
      }
      const float sa = __half2float(sa_h);
      const float sw = __half2float(sw_h) * (normal ? 1.0f / 256.0f : 1.0f);  // normal: sums are 256x (exact)
      float* sc = Sc(j);
      sc[pt] = sa;
      store_col_scale<kF2>(sc, pt, sw);
      ptx::fence_proxy_async_shared();  // the INT8 B (generic writes, cp.async) is read by wgmma (async proxy)
      ptx::mbar_arrive(u_full + j % kU);
      if (last_of(j)) {
        ptx::mbar_arrive(p_empty + q % kP);
        if (pt == 0 && q + kAhead < n_pstages) issue(q + kAhead);
      }
    };
    // The scales of the kScalesAhead steps in flight live in a register ring indexed by compile-time
    // constants (unrolled loop): step j loads step j + R - 1's into the slot step j - 1 used.
    constexpr int R = kScalesAhead;
    __half sa_q[R], sw_q[R];
#pragma unroll
    for (int u = 0; u < R; ++u) sa_q[u] = sw_q[u] = __ushort_as_half(0);
#pragma unroll
    for (int u = 0; u < R - 1; ++u) load_sc(u, sa_q[u], sw_q[u]);
    for (int j0 = 0; j0 < n_steps; j0 += R) {
#pragma unroll
      for (int u = 0; u < R; ++u) {
        const int j = j0 + u;
        if (j < n_steps) {
          load_sc(j + R - 1, sa_q[(u + R - 1) % R], sw_q[(u + R - 1) % R]);
          step(j, sa_q[u], sw_q[u]);
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
#pragma unroll
    for (int e = 0; e < 64; ++e) facc[e] = 0.0f;

    // A's registers for wgmma: logical k 4t..4t+3 / 16+4t.. of k-step kk hold the even / odd elements of
    // packed word 4kk + t, the permutation the producer applies to B. Rows arow and arow + 8 share a swizzle.
    auto load_a = [&](const uint8_t* pa, int sub, auto exact, uint32_t (&a)[4][4]) {
      if constexpr (!decltype(exact)::value) {
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const uint32_t w0 = *reinterpret_cast<const uint32_t*>(pa + packed_off(arow, sub, kk) + t * 4);
          const uint32_t w1 = *reinterpret_cast<const uint32_t*>(pa + packed_off(arow + 8, sub, kk) + t * 4);
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
    // 4 k-steps of one 64-column half into its accumulator, one commit group. A from the registers a, or
    // (kAInSmem) this warpgroup's 64 rows of the 128B-swizzled INT8 tile at `at`.
    auto mma_half = [&](int32_t (&acc)[32], const uint32_t (&a)[4][4], const uint8_t* at, const uint8_t* ub, int h) {
      if (MODE & 4) return;
      ptx::wgmma_fence_operands(acc);
      ptx::wgmma_fence();
      const uint64_t db = ptx::wgmma_desc_kmajor_sw128(ub + h * 64 * 128);
      const uint64_t da = kAInSmem ? ptx::wgmma_desc_kmajor_sw128(at + cw * 64 * 128) : 0;
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        if constexpr (kAInSmem)
          ptx::wgmma_m64n64k32_s8(acc, ptx::wgmma_desc_add(da, ks * 32), ptx::wgmma_desc_add(db, ks * 32), ks > 0 ? 1 : 0);
        else
          ptx::wgmma_m64n64k32_s8_rs(acc, a[ks], ptx::wgmma_desc_add(db, ks * 32), ks > 0 ? 1 : 0);
      }
      ptx::wgmma_commit();
    };
    uint32_t a[4][4];
    // sub: group i's place in its packed stage, a compile-time constant (a run-time one made ptxas inject
    // warpgroup.arrive before the wgmma reading A's registers, C7519)
    auto consume = [&](int i, auto exact, auto sub) {
      constexpr bool kExact = decltype(exact)::value;
      const int gidx = kExact ? p.G : g_begin + i;
      const int q = q_of(i);
      ptx::mbar_wait(u_full + i % kU, (i / kU) & 1);
      const uint8_t* ub = U(i);
      const uint8_t* at = nullptr;
      if constexpr (kAInSmem) {  // (kG = 1: stage q is step i)
        // normal steps read nothing of P: release it at once; the outlier step's wgmma reads its INT8 A there
        if (!kExact) ptx::mbar_arrive(p_empty + q % kP);
        else ptx::mbar_wait(p_full + q % kP, (q / kP) & 1);
        at = kExact ? P(q) : ub + kUStageB;
      } else {
        ptx::mbar_wait(p_full + q % kP, (q / kP) & 1);  // (A's bytes: seen directly, not only via the producer)
        load_a(P(q), decltype(sub)::value, exact, a);
      }
      HalfScales<kF2> hs;
      if (kScalesFirst) load_half_scales<kF2>(Sc(i), arow, t, 0, hs);
      mma_half(acc0, a, at, ub, 0);
      mma_half(acc1, a, at, ub, 1);
      // the stage's last group releases it, after its wgmma are issued (no branch between the A registers'
      // loads and the wgmma that read them)
      if (!kAInSmem && last_of(i)) ptx::mbar_arrive(p_empty + q % kP);
      if (!kScalesFirst) load_half_scales<kF2>(Sc(i), arow, t, 0, hs);
      if (!(MODE & 4)) ptx::wgmma_wait<1>();
      ptx::wgmma_fence_operands(acc0);
      if (!(MODE & 1)) promote_half<kExact, kPsums, kF2>(facc, acc0, 0, hs, p, m0, n0, arow, t, gidx, Gt);
      load_half_scales<kF2>(Sc(i), arow, t, 1, hs);
      if (!(MODE & 4)) ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(acc1);
      if (!(MODE & 1)) promote_half<kExact, kPsums, kF2>(facc, acc1, 1, hs, p, m0, n0, arow, t, gidx, Gt);
      if (kAInSmem && kExact) ptx::mbar_arrive(p_empty + q % kP);
      ptx::mbar_arrive(u_empty + i % kU);
    };
    for (int i = 0; i < n_groups; i += kG) {
      consume(i, std::false_type{}, std::integral_constant<int, 0>{});
      if (kG == 2 && i + 1 < n_groups) consume(i + 1, std::false_type{}, std::integral_constant<int, 1>{});
    }
    if (n_steps > n_groups) consume(n_groups, std::true_type{}, std::integral_constant<int, 0>{});
    for_each_out_pair(p, facc, m0, n0, arow, t, [&](int64_t o, int c, float v0, float v1) { store_out_pair(p, o, c, v0, v1); });
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (see atom_gemm_wgmma_available())
#endif
}

template <int kP, int kU, bool kPsums, bool kAInSmem = false, bool kScalesFirst = false, int MODE = 0, int kG = 1,
          bool kF2 = false>
KernelLaunch tma_launch() {
  KernelLaunch k{nullptr, BM, BN, kThreads, TmaSmem<kP, kU, kAInSmem, kG>::kBytes, 1};
  k.tma_fn = atom_gemm_tma_kernel<kP, kU, kPsums, kAInSmem, kScalesFirst, MODE, kG, kF2>;
  k.tma_groups = kG;
  return k;
}

// An A-in-registers variant with kP packed stages, kG groups per stage, kF2 scales: its diagnostic `mode` (1, 2, 4, 5;
// timing only) or its psums / plain instance.
template <int kP, int kG, bool kF2>
KernelLaunch tma_modes(bool psums, int mode) {
  switch (mode) {
    case 1: return tma_launch<kP, 3, false, false, false, 1, kG, kF2>();
    case 2: return tma_launch<kP, 3, false, false, false, 2, kG, kF2>();
    case 4: return tma_launch<kP, 3, false, false, false, 4, kG, kF2>();
    case 5: return tma_launch<kP, 3, false, false, false, 5, kG, kF2>();
    default: return psums ? tma_launch<kP, 3, true, false, false, 0, kG, kF2>() : tma_launch<kP, 3, false, false, false, 0, kG, kF2>();
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

}  // namespace

bool tma_supports(const Params& p) {
  return p.O <= kMaxOutliers && aligned16(p.a4) && aligned16(p.w4) && (p.O == 0 || aligned16(p.a8));
}

TmaParams make_tma_params(const Params& p, int groups_per_stage) {
  TmaParams tp{};
  tp.p = p;
  const uint64_t rb = uint64_t(p.G) * 64;  // q4 row bytes
  const uint32_t box = 64u * uint32_t(groups_per_stage);
  const TmaSwizzle sw = groups_per_stage == 2 ? TmaSwizzle::k128B : TmaSwizzle::k64B;
  tma_map_2d_u8(&tp.a4, p.a4, rb, uint64_t(p.M), rb, box, BM, sw);
  tma_map_2d_u8(&tp.w4, p.w4, rb, uint64_t(p.N), rb, box, BN, sw);
  if (p.O > 0) tma_map_2d_u8(&tp.a8, p.a8, uint64_t(p.O), uint64_t(p.M), uint64_t(p.O), 128, BM, TmaSwizzle::k128B);
  return tp;
}

// variant 3: two groups per packed stage, kP = 4 (2 stages = 64 KB in flight), kU = 3 (config 22); variant 4:
// variant 3 with float2 column scales (config 23, dispatched).
// variant 0: kP = 6, kU = 3 (4 steps = 64 KB of copies in flight); variant 1: the same with A unpacked by the
// producer into shared memory (both wgmma operands there); variant 2: variant 1 with the first half's scales
// loaded before the wgmma. (A 10 + 3 ring was slower than 6 + 3 on every row; an 8 + 4 one's psums instance
// failed on K >= 4096: results.md §12a.) Diagnostic modes (`mode` != 0, timing only) run on variants 0, 3, 4.
KernelLaunch tma_kernel(bool psums, int variant, int mode) {
  if (variant == 3) return tma_modes<4, 2, false>(psums, mode);
  if (variant == 4) return tma_modes<4, 2, true>(psums, mode);
  if (mode == 0 && variant == 1) return psums ? tma_launch<6, 3, true, true>() : tma_launch<6, 3, false, true>();
  if (mode == 0 && variant == 2) return psums ? tma_launch<6, 3, true, true, true>() : tma_launch<6, 3, false, true, true>();
  return tma_modes<6, 1, false>(psums, mode);
}

}  // namespace atom::cuda::gemm_detail
