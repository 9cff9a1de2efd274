// W4A4 + INT8-outlier GEMM, warp-specialized (sm_90a). Layouts: atom_gemm.h; shared parts:
// atom_gemm_common.cuh; design and measurements: docs/kernels.md, docs/results.md §3d-3e.
// One CTA = 3 warpgroups over a 128x128 output tile and a ring of kS stages in shared memory. A "step" is
// one 128-deep INT4 group, or the 128-wide INT8 outlier tail (O <= 128).
//   producer (warpgroup 0): step i = wait until stage i is free, cp.async its packed A and B rows, load its
//     two fp16 scales into a register ring; then finish step i - kLag (its copies have landed): unpack B to
//     INT8 in wgmma's core-matrix layout, write the fp32 scales (s_a, s_w, -1.5*2^23*s_w for the
//     magic-number conversion), fence for the async proxy, arrive on `full`. kLag steps are in flight.
//   consumers (warpgroups 1, 2: rows 0..63 / 64..127): wait `full`, unpack their A rows from shared memory
//     straight into wgmma's register fragment (no INT8 copy of A), 4 x wgmma m64n64k32 s8 per 64-column
//     half, then promote facc += fp32(acc * s_w) * s_a. kLoop picks the consumer loop: 0 = split-N (each
//     half promoted under the next half's wgmma; ptxas serializes it, C7514), 1 = both halves issued, half
//     0 promoted under half 1 (the default, config 9), 2 = two steps per iteration, 3 = config 9's step with the
//     two consumer warpgroups' wgmma issued in turns (ping-pong, config 14).
// INT4 is unpacked into the high nibble (bytes = 16 * q: 3 integer ops per 8 values, no sign extension, k
// permuted alike on A and B), so group sums are 256x and s_w is stored / 256 (exact).
// The outlier tail is promoted with an exact int -> float conversion (its partial sums may exceed the
// magic trick's 2^22). Ring variants: kS = 6 / kLag = 3 and kS = 5 / kLag = 2.
// MODE (diagnostics only, wrong results): bit 0 = no promotion, bit 1 = no B unpacking, bit 2 = no wgmma.
#include <cuda_fp16.h>

#include <type_traits>

#include "atom/backend/cuda/atom_gemm_common.cuh"
#include "atom/backend/cuda/atom_gemm_wg_consumer.cuh"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda::gemm_detail {
namespace {

constexpr int BM = 128, BN = 128;
constexpr int kMaxOutliers = 128;
// one stage: B as INT8 (core-matrix layout), A packed (80-byte rows; the outlier step's INT8 A rows use a
// 144-byte stride over the A and packed-B areas), B packed, fp32 scales (s_a[BM], s_w[BN], -magic*s_w[BN])
constexpr int kBiOff = 0, kAOff = BN * 128, kBpOff = kAOff + BM * kQ4Stride, kScOff = kBpOff + BN * kQ4Stride;
constexpr int kStageBytes = kScOff + (BM + 2 * BN) * 4;
static_assert(BM * kQ8Stride <= kScOff - kAOff, "the outlier step's INT8 A rows must fit the A and B areas");
static_assert(kStageBytes % 128 == 0);
static_assert(BM == kWgTileM, "the shared promotion assumes 128-row tiles");
constexpr int kThreads = 384, kProducerRegs = 136, kConsumerRegs = 184;
static_assert(ptx::register_split_fits(kThreads, kProducerRegs, kConsumerRegs));
template <int kS>
constexpr int smem_bytes() { return kS * kStageBytes + 2 * kS * 8; }  // stages, then full[kS], empty[kS]

// kPsums: also write the int32 partial sums (tests); a separate instance keeps that code out of the fast one.
// kSumSplits: split-K partial tiles go to p.partials and the tile's last CTA sums them (no memset, no fp32
// atomics, no conversion kernel); else the launcher's fp32-atomic path.
template <int kS, int kLag, bool kPsums, int MODE, int kLoop = 0, bool kSumSplits = false>
__global__ void __launch_bounds__(kThreads, 1) atom_gemm_ws_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  // consumers release a stage one step late (kLag = kS - 1 would deadlock; kS - 3 leaves a step of slack)
  static_assert(kLag <= kS - 2, "ring too shallow for the lag");
  extern __shared__ __align__(1024) uint8_t smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kS * kStageBytes);
  uint64_t* empty = full + kS;
  const int tid = threadIdx.x, wgi = tid / 128;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int g_begin = blockIdx.z * p.groups_per_split;
  const int n_groups = max(0, min(p.G, g_begin + p.groups_per_split) - g_begin);
  const int n_steps = n_groups + ((blockIdx.z == 0 && p.O > 0) ? 1 : 0);
  const int64_t rb = int64_t(p.G) * 64;  // q4 row bytes
  auto stage = [&](int i) { return smem + (i % kS) * kStageBytes; };

  if (tid == 0) {
    for (int s = 0; s < kS; ++s) {
      ptx::mbar_init(full + s, 128);   // the producer's threads
      ptx::mbar_init(empty + s, 256);  // the consumers' threads
    }
  }
  __syncthreads();

  if (wgi == 0) {
    // ================================ producer ================================
    ptx::setmaxnreg_dec<kProducerRegs>();
    const int pt = tid;
    // This thread's sources, advanced by one group per step (running pointers: computed from the group
    // index, ptxas rematerialized ~80 address operations per step): four 16-byte pieces of A, row pt of B
    // (which it also unpacks: no barrier between copy and unpack) and its two scale rows. Rows past M / N
    // read row 0 (a valid address; cp.async zero-fills them).
    const uint8_t* a_src[4];
    int a_dst[4];
    bool a_ok[4];
#pragma unroll
    for (int it = 0; it < 4; ++it) {
      const int idx = pt + 128 * it, r = idx >> 2, c = idx & 3;
      a_ok[it] = m0 + r < p.M;
      a_src[it] = p.a4 + (a_ok[it] ? (m0 + r) * rb : 0) + c * 16 + g_begin * 64;
      a_dst[it] = kAOff + r * kQ4Stride + c * 16;
    }
    const bool sa_ok = m0 + pt < p.M, sw_ok = n0 + pt < p.N;
    const uint8_t* b_src = p.w4 + (sw_ok ? (n0 + pt) * rb : 0) + g_begin * 64;
    const __half* sa_src = p.sa + (sa_ok ? int64_t(m0 + pt) * p.G : 0) + g_begin;
    const __half* sw_src = p.sw + (sw_ok ? int64_t(n0 + pt) * p.G : 0) + g_begin;
    // cp.async of step i's A and B into its stage; this thread's two scales into (sa, sw), as loaded: they
    // are converted kLag steps later, in finish (converting here made every step wait for an L2 round trip,
    // the top stall in the profile of 2026-12-01)
    auto issue = [&](int i, __half& sa, __half& sw) {
      uint8_t* st = stage(i);
      if (i < n_groups) {
#pragma unroll
        for (int it = 0; it < 4; ++it) {
          ptx::cp_async_16(st + a_dst[it], a_src[it], a_ok[it]);
          a_src[it] += 64;
        }
#pragma unroll
        for (int c = 0; c < 4; ++c) ptx::cp_async_16(st + kBpOff + pt * kQ4Stride + c * 16, b_src + c * 16, sw_ok);
        b_src += 64;
        const __half zero = __ushort_as_half(0);
        sa = sa_ok ? *sa_src : zero;
        sw = sw_ok ? *sw_src : zero;
        ++sa_src, ++sw_src;
      } else {  // the outlier tail: INT8 A rows as they are, INT8 B straight into the core-matrix layout
#pragma unroll
        for (int it = 0; it < 8; ++it) {
          const int idx = pt + 128 * it, r = idx >> 3, c = idx & 7;
          const bool kok = c * 16 < p.O;
          const bool oka = kok && m0 + r < p.M, okb = kok && n0 + r < p.N;
          ptx::cp_async_16(st + kAOff + r * kQ8Stride + c * 16, oka ? p.a8 + int64_t(m0 + r) * p.O + c * 16 : p.a8, oka);
          ptx::cp_async_16(st + kBiOff + cm_off(r, c), okb ? p.w8 + int64_t(n0 + r) * p.O + c * 16 : p.w8, okb);
        }
        sa = sa_ok ? p.sao[m0 + pt] : __ushort_as_half(0);
        sw = sw_ok ? p.swo[n0 + pt] : __ushort_as_half(0);
      }
    };
    // step j's copies have landed: unpack B, write the scales, publish the stage
    auto finish = [&](int j, __half sa_h, __half sw_h) {
      const float sa = __half2float(sa_h);
      float sw = __half2float(sw_h);
      uint8_t* st = stage(j);
      const bool normal = j < n_groups;
      if (normal && !(MODE & 2)) {  // row pt of B, 16 * q in each byte, k permuted as A's (unpack_int4x8_x16_split)
        uint4 wq[4];  // all four loads first: one shared-memory latency, not four
#pragma unroll
        for (int c = 0; c < 4; ++c) wq[c] = *reinterpret_cast<const uint4*>(st + kBpOff + pt * kQ4Stride + c * 16);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const uint4 w = wq[c];
          uint4 lo, hi;
          ptx::unpack_int4x8_x16_split(w.x, lo.x, hi.x);
          ptx::unpack_int4x8_x16_split(w.y, lo.y, hi.y);
          ptx::unpack_int4x8_x16_split(w.z, lo.z, hi.z);
          ptx::unpack_int4x8_x16_split(w.w, lo.w, hi.w);
          *reinterpret_cast<uint4*>(st + kBiOff + cm_off(pt, 2 * c)) = lo;
          *reinterpret_cast<uint4*>(st + kBiOff + cm_off(pt, 2 * c + 1)) = hi;
        }
      }
      // normal groups: both operands hold 16 * q, the sums are 256x: s_w / 256 (exact) undoes it
      if (normal) sw *= 1.0f / 256.0f;
      // s_a[BM], then per column pair c, c+1: {s_w[c], s_w[c+1], -magic*s_w[c], -magic*s_w[c+1]} (one float4)
      float* sc = reinterpret_cast<float*>(st + kScOff);
      sc[pt] = sa;
      store_col_scale(sc, pt, sw);
      ptx::fence_proxy_async_shared();  // the INT8 B (generic writes, cp.async) is read by wgmma (async proxy)
      ptx::mbar_arrive(full + j % kS);
    };
    // step i: free its stage (the consumers' lap before), issue it; finish step i - kLag. The scales of the
    // kLag + 1 steps in flight live in a register ring indexed by compile-time constants (unrolled loop).
    auto step = [&](int i, __half& sa_in, __half& sw_in, __half& sa_out, __half& sw_out) {
      if (i < n_steps) {
        ptx::mbar_wait(empty + i % kS, ((i / kS) & 1) ^ 1);
        issue(i, sa_in, sw_in);
      }
      ptx::cp_async_commit();  // (empty past the last step: keeps the group count uniform)
      if (i >= kLag && i - kLag < n_steps) {
        ptx::cp_async_wait<kLag>();
        finish(i - kLag, sa_out, sw_out);
      }
    };
    constexpr int R = kLag + 1;
    __half sa_q[R], sw_q[R];
#pragma unroll
    for (int u = 0; u < R; ++u) sa_q[u] = sw_q[u] = __ushort_as_half(0);
    for (int i0 = 0; i0 < n_steps + kLag; i0 += R) {
#pragma unroll
      for (int u = 0; u < R; ++u) step(i0 + u, sa_q[u], sw_q[u], sa_q[(u + 1) % R], sw_q[(u + 1) % R]);
    }
    ptx::cp_async_wait<0>();
  } else {
    // ================================ consumers ================================
    ptx::setmaxnreg_inc<kConsumerRegs>();
    const int cw = wgi - 1, ct = tid - 128 * wgi, warp = ct / 32, lane = ct % 32, gq = lane / 4, t = lane % 4;
    const int arow = 64 * cw + 16 * warp + gq;  // this thread's A rows in the tile: arow, arow + 8
    const int Gt = p.G + (p.O > 0 ? 1 : 0);
    // the two 64-column halves of the accumulator (wgmma m64n64: d[4j + e] = row arow + 8(e/2),
    // column 64h + 8j + 2t + e%2)
    int32_t acc0[32], acc1[32];
    float facc[64];
#pragma unroll
    for (int e = 0; e < 32; ++e) acc0[e] = acc1[e] = 0;
#pragma unroll
    for (int e = 0; e < 64; ++e) facc[e] = 0.0f;

    // facc(half h) += fp32(acc * s_w) * s_a with the scales of stage `st` (atom_gemm_wg_consumer.cuh). `exact`
    // (a compile-time bool: a runtime one made ptxas issue both conversions, predicated, for every element) is
    // the outlier step.
    auto load_scales = [&](const uint8_t* st, int h, HalfScales<>& hs) {
      load_half_scales(reinterpret_cast<const float*>(st + kScOff), arow, t, h, hs);
    };
    auto promote_with = [&](auto exact, int32_t (&acc)[32], int h, const HalfScales<>& hs, int gidx) {
      if (MODE & 1) return;
      promote_half<decltype(exact)::value, kPsums>(facc, acc, h, hs, p, m0, n0, arow, t, gidx, Gt);
    };
    auto promote = [&](auto exact, int32_t (&acc)[32], int h, const uint8_t* st, int gidx) {
      HalfScales<> hs;
      load_scales(st, h, hs);
      promote_with(exact, acc, h, hs, gidx);
    };
    auto promote_step = [&](int32_t (&acc)[32], int h, int i) {  // (a runtime branch, for the config-7 loop)
      if (i < n_groups) promote(std::false_type{}, acc, h, stage(i), g_begin + i);
      else promote(std::true_type{}, acc, h, stage(i), p.G);
    };
    // A's registers for wgmma: logical k 4t..4t+3 / 16+4t.. of k-step kk hold the even / odd elements of
    // packed word 4kk + t, the permutation the producer applies to B
    auto load_a = [&](const uint8_t* st, bool normal, uint32_t (&a)[4][4]) {
      if (normal) {
        const uint8_t* A = st + kAOff + arow * kQ4Stride;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          const uint32_t w0 = *reinterpret_cast<const uint32_t*>(A + kk * 16 + t * 4);
          const uint32_t w1 = *reinterpret_cast<const uint32_t*>(A + 8 * kQ4Stride + kk * 16 + t * 4);
          ptx::unpack_int4x8_x16_split(w0, a[kk][0], a[kk][2]);
          ptx::unpack_int4x8_x16_split(w1, a[kk][1], a[kk][3]);
        }
      } else {  // (channels past O were zero-filled: all four k-steps run, no divergent wgmma issue)
        const uint8_t* A = st + kAOff + arow * kQ8Stride;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          a[kk][0] = *reinterpret_cast<const uint32_t*>(A + kk * 32 + t * 4);
          a[kk][1] = *reinterpret_cast<const uint32_t*>(A + 8 * kQ8Stride + kk * 32 + t * 4);
          a[kk][2] = *reinterpret_cast<const uint32_t*>(A + kk * 32 + 16 + t * 4);
          a[kk][3] = *reinterpret_cast<const uint32_t*>(A + 8 * kQ8Stride + kk * 32 + 16 + t * 4);
        }
      }
    };
    // 4 k-steps of one half into its accumulator, one commit group
    auto mma_half = [&](int32_t (&acc)[32], const uint32_t (&a)[4][4], const uint8_t* st, int h) {
      if (MODE & 4) return;
      ptx::wgmma_fence_operands(acc);
      ptx::wgmma_fence();
      const uint64_t desc = ptx::wgmma_desc_kmajor_noswizzle(st + kBiOff, 8);
#pragma unroll
      for (int ks = 0; ks < 4; ++ks)
        ptx::wgmma_m64n64k32_s8_rs(acc, a[ks], ptx::wgmma_desc_add(desc, h * 8192 + ks * 256), ks > 0 ? 1 : 0);
      ptx::wgmma_commit();
    };
    auto wait_pending = [&]() {  // all but the newest commit group have completed
      if (MODE & 4) return;
      ptx::wgmma_wait<1>();
      ptx::wgmma_fence_operands(acc0);
      ptx::wgmma_fence_operands(acc1);
    };
    // wait until all commit groups but the newest (wait_all: all of them) have completed; then `acc` may be read
    auto wait_but_newest = [&](int32_t (&acc)[32]) {
      if (MODE & 4) return;
      ptx::wgmma_wait<1>();
      ptx::wgmma_fence_operands(acc);
    };
    auto wait_all = [&](int32_t (&acc)[32]) {
      if (MODE & 4) return;
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(acc);
    };
    // Step i: half 0 on the tensor cores while the previous step's half 1 is promoted, then half 1 while
    // this step's half 0 is; every promotion runs under a wgmma of this warpgroup. A is double-buffered
    // (the previous step's half 1 may still read its registers); a stage is released once both of its
    // halves are promoted, i.e. one step late.
    auto step = [&](int i, uint32_t (&a)[4][4]) {
      const uint8_t* st = stage(i);
      ptx::mbar_wait(full + i % kS, (i / kS) & 1);
      const bool normal = i < n_groups;
      load_a(st, normal, a);
      mma_half(acc0, a, st, 0);
      if (i > 0) {
        wait_pending();  // step i - 1's half 1
        promote_step(acc1, 1, i - 1);
        ptx::mbar_arrive(empty + (i - 1) % kS);
      }
      mma_half(acc1, a, st, 1);
      wait_pending();  // this step's half 0
      promote_step(acc0, 0, i);
    };
    uint32_t a0[4][4], a1[4][4];
    // kLoop 3 (ping-pong) takes turns: the two consumer warpgroups issue their wgmma in strict alternation
    // (named barriers 1 and 2: warpgroup 0 issues step i after warpgroup 1 issued step i - 1, warpgroup 1 after
    // warpgroup 0 issued step i). Both wait on the same `full` barrier, so without an order they run in phase:
    // their MMAs queue together, then both promote with the tensor cores idle. In turns, one warpgroup's
    // promotion runs under the other's MMAs.
    auto overlap_step = [&](int i, auto exact) {
      const uint8_t* st = stage(i);
      const int gidx = decltype(exact)::value ? p.G : g_begin + i;
      ptx::mbar_wait(full + i % kS, (i / kS) & 1);
      load_a(st, !decltype(exact)::value, a0);
      if constexpr (kLoop == 3) {
        if (cw == 1 || i > 0) ptx::named_bar_sync(1 + cw, 256);
      }
      mma_half(acc0, a0, st, 0);
      mma_half(acc1, a0, st, 1);
      if constexpr (kLoop == 3) {
        if (cw == 0 || i + 1 < n_steps) ptx::named_bar_arrive(2 - cw, 256);  // (no turn after the last step)
      }
      HalfScales<> hs;
      load_scales(st, 0, hs);
      wait_but_newest(acc0);
      promote_with(exact, acc0, 0, hs, gidx);
      load_scales(st, 1, hs);
      wait_all(acc1);
      promote_with(exact, acc1, 1, hs, gidx);
      ptx::mbar_arrive(empty + i % kS);
    };
    if constexpr (kLoop == 2) {
      // Two steps per iteration: half 1 of the first is promoted under half 0 of the second, so three of
      // the four promotions run under this warpgroup's own wgmma; nothing stays pending across the back edge.
      int i = 0;
      for (; i + 1 < n_groups; i += 2) {
        const uint8_t* s0 = stage(i);
        const uint8_t* s1 = stage(i + 1);
        ptx::mbar_wait(full + i % kS, (i / kS) & 1);
        load_a(s0, true, a0);
        mma_half(acc0, a0, s0, 0);
        mma_half(acc1, a0, s0, 1);
        wait_but_newest(acc0);
        promote(std::false_type{}, acc0, 0, s0, g_begin + i);
        ptx::mbar_wait(full + (i + 1) % kS, ((i + 1) / kS) & 1);
        load_a(s1, true, a1);
        mma_half(acc0, a1, s1, 0);
        wait_but_newest(acc1);
        promote(std::false_type{}, acc1, 1, s0, g_begin + i);
        ptx::mbar_arrive(empty + i % kS);
        mma_half(acc1, a1, s1, 1);
        wait_but_newest(acc0);
        promote(std::false_type{}, acc0, 0, s1, g_begin + i + 1);
        wait_all(acc1);
        promote(std::false_type{}, acc1, 1, s1, g_begin + i + 1);
        ptx::mbar_arrive(empty + (i + 1) % kS);
      }
      for (; i < n_groups; ++i) overlap_step(i, std::false_type{});
      if (n_steps > n_groups) overlap_step(n_groups, std::true_type{});
    } else if constexpr (kLoop == 1 || kLoop == 3) {
      // Both halves issued, half 0 promoted under half 1, half 1 after wait<0>: no commit group stays
      // pending across the loop's back edge, which is what made ptxas serialize the split-N loop (kLoop 0,
      // below; C7514, docs/kernels.md). The outlier step is its own instance (compile-time `exact`).
      for (int i = 0; i < n_groups; ++i) overlap_step(i, std::false_type{});
      if (n_steps > n_groups) overlap_step(n_groups, std::true_type{});
    } else {
    for (int i = 0; i < n_steps; i += 2) {
      step(i, a0);
      if (i + 1 < n_steps) step(i + 1, a1);
    }
    if (n_steps > 0) {
      const int i = n_steps - 1;
      wait_all(acc1);
      promote_step(acc1, 1, i);
      ptx::mbar_arrive(empty + i % kS);
    }
    }

    auto for_each_pair = [&](auto&& f) { for_each_out_pair(p, facc, m0, n0, arow, t, f); };
    if (kSumSplits && p.partials) {
      // The producer warpgroup has exited: the consumers count the CTA in among themselves (named barrier 3).
      const int64_t mn = int64_t(p.M) * p.N;
      float* mine = p.partials + blockIdx.z * mn;
      for_each_pair([&](int64_t o, int c, float v0, float v1) {
        if (c < p.N) mine[o] = v0;
        if (c + 1 < p.N) mine[o + 1] = v1;
      });
      if (!splitk_last_cta(p.counters + blockIdx.y * gridDim.x + blockIdx.x, 128, [] { ptx::named_bar_sync(3, 256); }))
        return;
      for_each_pair([&](int64_t o, int c, float, float) {
        float v0, v1;
        splitk_sum_pair(p, mn, o, c < p.N, c + 1 < p.N, v0, v1);
        store_out_pair(p, o, c, v0, v1);
      });
    } else {
      for_each_pair([&](int64_t o, int c, float v0, float v1) { store_out_pair(p, o, c, v0, v1); });
    }
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (see atom_gemm_wgmma_available())
#endif
}

template <int kS, int kLag, bool kPsums, int MODE, int kLoop = 0, bool kSumSplits = false>
KernelLaunch ws_launch() {
  return {atom_gemm_ws_kernel<kS, kLag, kPsums, MODE, kLoop, kSumSplits>, BM, BN, kThreads, smem_bytes<kS>(), 1, kSumSplits};
}

}  // namespace

bool ws_supports(const Params& p) { return p.O <= kMaxOutliers; }

// variant 0: kS = 6, kLag = 3 (equal or 1-10% faster on the H200, bench/results/results-h200-2026-12-01-gemm-ws-x16.log);
// variant 1: kS = 5, kLag = 2; variant 2: variant 0 with the one-step overlapped consumer loop (kLoop 1);
// variant 3: the two-step loop (kLoop 2); variant 4: variant 1's ring with kLoop 1; variant 5: variant 2 with the
// consumer warpgroups' wgmma issued in turns (kLoop 3, ping-pong); variant 6: variant 2 with split-K summed by the
// tile's last CTA (kSumSplits). Diagnostic modes run on config 11 (variant 4: the dispatched kernel).
KernelLaunch ws_kernel(bool psums, int mode, int variant) {
  if (variant == 1) return psums ? ws_launch<5, 2, true, 0>() : ws_launch<5, 2, false, 0>();
  if (variant == 2) return psums ? ws_launch<6, 3, true, 0, 1>() : ws_launch<6, 3, false, 0, 1>();
  if (variant == 3) return psums ? ws_launch<6, 3, true, 0, 2>() : ws_launch<6, 3, false, 0, 2>();
  if (variant == 4) return psums ? ws_launch<5, 2, true, 0, 1>() : ws_launch<5, 2, false, 0, 1>();
  if (variant == 5) return psums ? ws_launch<6, 3, true, 0, 3>() : ws_launch<6, 3, false, 0, 3>();
  if (variant == 6) return psums ? ws_launch<6, 3, true, 0, 1, true>() : ws_launch<6, 3, false, 0, 1, true>();
  if (psums) return ws_launch<6, 3, true, 0>();
  switch (mode) {
    case 1: return ws_launch<5, 2, false, 1, 1>();
    case 2: return ws_launch<5, 2, false, 2, 1>();
    case 4: return ws_launch<5, 2, false, 4, 1>();
    case 5: return ws_launch<5, 2, false, 5, 1>();
    default: return ws_launch<6, 3, false, 0>();
  }
}

}  // namespace atom::cuda::gemm_detail
