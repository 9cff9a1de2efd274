// W4A4 + INT8-outlier GEMM: the sm_90a wgmma kernel (config 3 and its variants), the host dispatch over all
// kernels (atom_gemm()) and the split-K launcher. The mma.sync decode kernel (configs 0-2) is in
// atom_gemm_mma.cu, the warp-specialized wgmma kernel (7-11) in atom_gemm_ws.cu. Layouts: atom_gemm.h.
#include <cuda_fp16.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/atom_gemm_common.cuh"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda {
namespace gemm_detail {
namespace {

// ---------------------------------------------------------------------------------------------------
// sm_90a path: wgmma m64n128k32 s8. CTA tile (64*WGS) x 128, WGS consumer warpgroups (each 64 rows x
// 128 columns, 64 s32 + 64 fp32 accumulators per thread); WGS = 1 runs two CTAs per SM (their
// promotions overlap each other's wgmma), WGS = 2 one. Per 128-deep group:
//   packed INT4 A/B tiles: cp.async ring of kS stages ([R rows][80 B], rows 0..BM-1 = A, then B)
//   -> all threads unpack to INT8 in the no-swizzle K-major core-matrix layout (ptx.cuh), double-buffered,
//      while the tensor cores run the previous group's 4 wgmma k-steps (scale-d = 0 on the first one);
//   -> wait, FP32 promotion facc += fp32(acc * s_w[n,g]) * s_a[m,g]: the s32 -> fp32 conversion is the
//      1.5*2^23 magic-number trick (exact for |acc| < 2^22; one IADD instead of a quarter-rate I2F) folded
//      into an FMA: fma(x, s_w, -1.5*2^23*s_w) = round(acc * s_w) exactly as an FMUL of float(acc) would.
//      Scales are loaded to registers a group ahead and staged in shared memory as fp32.
// The INT8 outlier tail: cp.async straight into the INT8 buffer, one more promoted "group".
// MODE (diagnostics only, wrong results): bit 0 = skip the promotion, bit 1 = skip the unpacking.
namespace wg {
constexpr int BN = 128, kS = 4;
template <int WGS>
struct Shape {
  static constexpr int BM = 64 * WGS, R = BM + BN, kThreads = 128 * WGS;
  static constexpr int kIBytes = R * 128;      // one INT8 buffer: A [BM rows][128 B], then B [BN rows][128 B]
  static constexpr int kPBytes = R * kQ4Stride;  // one packed stage
  static constexpr int kSBytes = (BM + 2 * BN) * 4;  // s_a[BM], s_w[BN], -magic*s_w[BN]
  static constexpr int kSmem = 2 * kIBytes + kS * kPBytes + 2 * kSBytes;
  static_assert((R * 4) % kThreads == 0 && (R * 8) % kThreads == 0 && R <= 2 * kThreads);
};
}  // namespace wg

template <int WGS, int MODE, bool SPLITN>
__global__ void __launch_bounds__(128 * WGS, 1) atom_gemm_wgmma_kernel(const Params p) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace wg;
  using S = Shape<WGS>;
  constexpr int BM = S::BM, R = S::R, T = S::kThreads;
  extern __shared__ __align__(1024) uint8_t wg_smem[];
  uint8_t* ibuf = wg_smem;                                                // [2][kIBytes]
  uint8_t* pbuf = wg_smem + 2 * S::kIBytes;                               // [kS][kPBytes]
  float* sbuf = reinterpret_cast<float*>(pbuf + kS * S::kPBytes);         // [2][BM + 2*BN]
  constexpr int SB = BM + 2 * BN;
  const int tid = threadIdx.x, wgi = tid / 128, warp = (tid % 128) / 32, lane = tid % 32, gq = lane / 4, t = lane % 4;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int g_begin = blockIdx.z * p.groups_per_split;
  const int g_end = min(p.G, g_begin + p.groups_per_split);
  const int64_t rb = int64_t(p.G) * 64;
  const int Gt = p.G + (p.O > 0 ? 1 : 0);

  auto load_packed = [&](int stage, int g) {
    uint8_t* dst = pbuf + stage * S::kPBytes;
#pragma unroll
    for (int it = 0; it < R * 4 / T; ++it) {
      const int i = tid + it * T, r = i / 4, c = i % 4;
      if (r < BM) {
        const bool ok = m0 + r < p.M;
        ptx::cp_async_16(dst + r * kQ4Stride + c * 16, ok ? p.a4 + int64_t(m0 + r) * rb + g * 64 + c * 16 : p.a4, ok);
      } else {
        const bool ok = n0 + r - BM < p.N;
        ptx::cp_async_16(dst + r * kQ4Stride + c * 16, ok ? p.w4 + int64_t(n0 + r - BM) * rb + g * 64 + c * 16 : p.w4, ok);
      }
    }
  };
  // scales of group g: s_a of tile row j (j < BM) or s_w of tile column j - BM (BM <= j < R); thread tid
  // handles j = tid and j = tid + T (R <= 2T)
  auto load_scale1 = [&](int j, int g) -> float {
    float v = 0.0f;
    if (j < BM) {
      if (m0 + j < p.M) v = __half2float(p.sa[int64_t(m0 + j) * p.G + g]);
    } else if (j < R && n0 + j - BM < p.N) {
      v = __half2float(p.sw[int64_t(n0 + j - BM) * p.G + g]);
    }
    return v;
  };
  auto load_scale = [&](int g) -> float2 { return make_float2(load_scale1(tid, g), load_scale1(tid + T, g)); };
  auto store_scale1 = [&](int b, int j, float v) {
    if (j < BM) {
      sbuf[b * SB + j] = v;
    } else if (j < R) {
      sbuf[b * SB + j] = v;
      sbuf[b * SB + BN + j] = -kMagic * v;  // exact: 3 * 2^22 times an fp16 value
    }
  };
  auto store_scale = [&](int b, float2 v) {
    store_scale1(b, tid, v.x);
    store_scale1(b, tid + T, v.y);
  };
  // packed stage -> INT8 buffer b (core-matrix layout)
  auto unpack = [&](int stage, int b) {
    if (MODE & 2) return;
    const uint8_t* src = pbuf + stage * S::kPBytes;
    uint8_t* dst = ibuf + b * S::kIBytes;
#pragma unroll
    for (int it = 0; it < R * 4 / T; ++it) {
      const int i = tid + it * T, r = i % R, c = i / R;
      const uint4 w = *reinterpret_cast<const uint4*>(src + r * kQ4Stride + c * 16);
      uint4 lo, hi;
      ptx::unpack_int4x8(w.x, lo.x, hi.x);
      ptx::unpack_int4x8(w.y, lo.y, hi.y);
      ptx::unpack_int4x8(w.z, lo.z, hi.z);
      ptx::unpack_int4x8(w.w, lo.w, hi.w);
      uint8_t* op = dst + (r < BM ? 0 : BM * 128);
      const int rr = r < BM ? r : r - BM;
      *reinterpret_cast<uint4*>(op + cm_off(rr, 2 * c)) = lo;
      *reinterpret_cast<uint4*>(op + cm_off(rr, 2 * c + 1)) = hi;
    }
  };
  int32_t acc[64];
  float facc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0, facc[i] = 0.0f;

  auto mma_group = [&](int b, bool accumulate_first) {
    const uint8_t* A = ibuf + b * S::kIBytes + wgi * 64 * 128;
    const uint8_t* B = ibuf + b * S::kIBytes + BM * 128;
    ptx::wgmma_fence_operands(acc);
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
      ptx::wgmma_m64n128k32_s8(acc, ptx::wgmma_desc_kmajor_noswizzle(A + ks * 256, 8),
                               ptx::wgmma_desc_kmajor_noswizzle(B + ks * 256, 8), (ks > 0 || accumulate_first) ? 1 : 0);
    ptx::wgmma_commit();
  };
  // SPLITN: the two 64-column halves as separate wgmma chains (commit groups), so that one half is
  // promoted while the tensor cores run the other (A is read from shared memory twice).
  auto mma_half = [&](int b, int half) {
    const uint8_t* A = ibuf + b * S::kIBytes + wgi * 64 * 128;
    const uint8_t* B = ibuf + b * S::kIBytes + BM * 128 + half * 64 * 128;
    int32_t(&d)[32] = *reinterpret_cast<int32_t(*)[32]>(acc + 32 * half);
    ptx::wgmma_fence_operands(d);
    ptx::wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < 4; ++ks)
      ptx::wgmma_m64n64k32_s8(d, ptx::wgmma_desc_kmajor_noswizzle(A + ks * 256, 8),
                              ptx::wgmma_desc_kmajor_noswizzle(B + ks * 256, 8), ks > 0 ? 1 : 0);
    ptx::wgmma_commit();
  };
  auto fence_half = [&](int half) {
    int32_t(&d)[32] = *reinterpret_cast<int32_t(*)[32]>(acc + 32 * half);
    ptx::wgmma_fence_operands(d);
  };
  // exact_cvt: plain I2F (the outlier term, whose partial sums can exceed 2^22). Columns 8*j0 .. 8*j1-1.
  auto promote = [&](int b, int gidx, bool exact_cvt, int j0 = 0, int j1 = 16) {
    if (MODE & 1) return;
    const float* sa = sbuf + b * SB + wgi * 64 + warp * 16 + gq;
    const float* sw = sbuf + b * SB + BM + 2 * t;
    const float sa0 = sa[0], sa1 = sa[8];
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      if (j < j0 || j >= j1) continue;
      const float2 w2 = *reinterpret_cast<const float2*>(sw + 8 * j);
      const float2 m2 = *reinterpret_cast<const float2*>(sw + BN + 8 * j);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int32_t a = acc[4 * j + e];
        const float swe = (e % 2) ? w2.y : w2.x;
        const float u = exact_cvt ? float(a) * swe : fmaf(__int_as_float(a + kMagicBits), swe, (e % 2) ? m2.y : m2.x);
        facc[4 * j + e] = fmaf(u, (e / 2) ? sa1 : sa0, facc[4 * j + e]);
        if (p.psums) {
          const int r = m0 + wgi * 64 + warp * 16 + gq + 8 * (e / 2), c = n0 + 8 * j + 2 * t + (e % 2);
          if (r < p.M && c < p.N) p.psums[(int64_t(r) * p.N + c) * Gt + gidx] = a;
        }
      }
    }
  };

  // ---- prologue ----
#pragma unroll
  for (int s = 0; s < kS - 1; ++s) {
    if (g_begin + s < g_end) load_packed(s, g_begin + s);
    ptx::cp_async_commit();
  }
  float2 sc_next = make_float2(0.0f, 0.0f);  // the scales of group g + 1, loaded one iteration ahead
  if (g_begin < g_end) {
    store_scale(0, load_scale(g_begin));
    if (g_begin + 1 < g_end) sc_next = load_scale(g_begin + 1);
    ptx::cp_async_wait<kS - 2>();
    __syncthreads();
    if (g_begin + kS - 1 < g_end) load_packed(kS - 1, g_begin + kS - 1);
    ptx::cp_async_commit();
    unpack(0, 0);
    ptx::fence_proxy_async_shared();
    __syncthreads();
  }
  // ---- main loop: wgmma on buffer i&1 while unpacking group i+1 into the other ----
  if constexpr (SPLITN) {
    for (int g = g_begin, i = 0; g < g_end; ++g, ++i) {
      const int b = i & 1;
      mma_half(b, 0);
      if (g > g_begin) {  // the previous group's right half, under this group's left half
        ptx::wgmma_wait<1>();
        fence_half(1);
        promote(b ^ 1, g - 1, false, 8, 16);
      }
      mma_half(b, 1);
      if (g + 1 < g_end) {
        ptx::cp_async_wait<kS - 2>();
        __syncthreads();  // every warpgroup is past the previous right half: buffer b^1 and sbuf[b^1] are free
        store_scale(b ^ 1, sc_next);
        if (g + 2 < g_end) sc_next = load_scale(g + 2);
        if (g + kS < g_end) load_packed(i % kS, g + kS);
        ptx::cp_async_commit();
        unpack((i + 1) % kS, b ^ 1);
        ptx::fence_proxy_async_shared();
      }
      ptx::wgmma_wait<1>();  // this group's left half, under its right half
      fence_half(0);
      promote(b, g, false, 0, 8);
      __syncthreads();
    }
    if (g_begin < g_end) {
      ptx::wgmma_wait<0>();
      fence_half(1);
      promote((g_end - 1 - g_begin) & 1, g_end - 1, false, 8, 16);
    }
  } else
  for (int g = g_begin, i = 0; g < g_end; ++g, ++i) {
    const int b = i & 1;
    mma_group(b, false);
    if (g + 1 < g_end) {
      store_scale(b ^ 1, sc_next);
      if (g + 2 < g_end) sc_next = load_scale(g + 2);
      ptx::cp_async_wait<kS - 2>();
      __syncthreads();
      if (g + kS < g_end) load_packed(i % kS, g + kS);
      ptx::cp_async_commit();
      unpack((i + 1) % kS, b ^ 1);
      ptx::fence_proxy_async_shared();
    }
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(acc);
    promote(b, g, false);
    __syncthreads();
  }
  ptx::cp_async_wait<0>();
  __syncthreads();

  // ---- INT8 outlier tail (split 0 only), 128-wide chunks into INT8 buffer 0 ----
  if (p.O > 0 && blockIdx.z == 0) {
    for (int j = tid; j < R; j += T) {
      float v = 0.0f;
      if (j < BM) {
        if (m0 + j < p.M) v = __half2float(p.sao[m0 + j]);
      } else if (n0 + j - BM < p.N) {
        v = __half2float(p.swo[n0 + j - BM]);
      }
      store_scale1(0, j, v);
    }
    for (int o0 = 0; o0 < p.O; o0 += 128) {
#pragma unroll
      for (int it = 0; it < R * 8 / T; ++it) {
        const int idx = tid + it * T, r = idx % R, kc = idx / R;
        const bool kok = o0 + kc * 16 < p.O;
        if (r < BM) {
          const bool ok = kok && m0 + r < p.M;
          ptx::cp_async_16(ibuf + cm_off(r, kc), ok ? p.a8 + int64_t(m0 + r) * p.O + o0 + kc * 16 : p.a8, ok);
        } else {
          const bool ok = kok && n0 + r - BM < p.N;
          ptx::cp_async_16(ibuf + BM * 128 + cm_off(r - BM, kc),
                           ok ? p.w8 + int64_t(n0 + r - BM) * p.O + o0 + kc * 16 : p.w8, ok);
        }
      }
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      ptx::fence_proxy_async_shared();
      __syncthreads();
      mma_group(0, o0 > 0);
      ptx::wgmma_wait<0>();
      ptx::wgmma_fence_operands(acc);
      __syncthreads();
    }
    promote(0, p.G, true);
  }

  // ---- epilogue ----
#pragma unroll
  for (int j = 0; j < 16; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = m0 + wgi * 64 + warp * 16 + gq + 8 * h;
      const int c = n0 + 8 * j + 2 * t;
      if (r >= p.M) continue;
      const float v0 = facc[4 * j + 2 * h], v1 = facc[4 * j + 2 * h + 1];
      const int64_t o = int64_t(r) * p.N + c;
      store_out_pair(p, o, c, v0, v1);
    }
#else
  __trap();  // built without sm_90a: the host never dispatches here (see atom_gemm_wgmma_available())
#endif
}

__global__ void f32_to_f16_kernel(const float* __restrict__ x, __half* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2half_rn(x[i]);
}

// configs 3, 4 = the wgmma kernel (sm_90a), tiles 128x128 (one CTA per SM) and 64x128 (two per SM);
// configs 5, 6 = the same with the N-split promotion overlap (SPLITN).
// Auto dispatch picks config 3 for M >= kWgmmaMinM (0 = never). Measured on H100 (bench/results/results-h100-
// 2026-11-25-wgmma.log): config 3 beats the mma.sync 128x128 config on all 7 issue shapes at M = 256..16384
// (1.4-1.6x) and the mma.sync 64x64 config at M = 128 on 5 of 7, loses to it at M = 64 on all 7; 65..127
// is unmeasured and stays on mma.sync, as does M <= 64 (the decode path). The SPLITN variants (5, 6) and
// the 64x128 tile (4) were slower than config 3 at every M >= 128 measured. Config 7 (warp-specialized,
// atom_gemm_ws.cu) replaced config 3 in auto dispatch from M = kWsMinM: on the H200 it is 1.05-1.5x faster
// than config 3 on all 7 shapes at M = 128..16384 (bench/results/results-h200-2026-12-01-gemm-ws.log), faster than
// the mma.sync 64x64 config on 7/7 at M = 96 and slower on 5/7 at M = 64 (...-gemm-ws-smallm.log).
// Which warp-specialized variant (bench/results/results-h200-2026-12-01-gemm-ws-v3.log, M = 256..16384, after the
// producer's scales stopped waiting on L2): the one-step overlapped loop (9) is 1.2-1.4x config 7 on all 7
// shapes; the two-step loop (10) and 9 with a 5-stage ring (11) are within -3..+4% of it. kWsMinM 65 -> 17
// (bench/results/results-h200-2026-12-02-gemm-decode.log): config 9 beats both mma.sync configs at M = 32 and 64 on
// all 7 shapes, config 0 beats it at M = 16 on all 7. Config 12 (A / B swapped: 64 weight rows x 8 tokens)
// took M <= 8 (fifth session): at M = 1 it beats config 0 on all 7 shapes, 1.10-1.40x (8192 -> 28672: 80.0 ->
// 57.0 us; bench/results/results-h200-2026-12-02-gemm-session5-start.log); at M = 16 (two token tiles) it loses on 6/7.
// Sixth session (bench/results/results-h200-2026-12-02-gemm-session6-start.log): the streaming kernel (config 15)
// beats config 12 at M = 1 and 8 on all 7 shapes (8192 -> 28672: 57.0 -> 42.9 us, 4096 -> 4096: 12.1 -> 6.7),
// so it takes M <= 8 (kStream8MaxM). At M = 9..16 it reads the weights once per 8-token tile: it still wins on the
// 5 shapes whose weights fit in L2 (the second tile hits L2) and ties config 0 on the two 70B shapes (117 MB),
// so above 8 tokens it runs only when the weights fit in L2. Config 11 (config 9 with a 5-stage ring) beats
// config 9 on all 21 rows of M = 64, 256, 1024 (by 1-9%), on 7/7 at M = 4096 (1-8%) and on 6/7 at M = 16384
// (ties on 4096 -> 4096, loses 2% on 8192 -> 28672; ...-session6-largem.log), so it takes every M >= kWsMinM.
// Configs 14 (ping-pong) and 17 (last-CTA split-K sum) lost to 9 on all 21 rows and are not dispatched.
// Seventh session (bench/results/results-h200-2026-12-02-gemm-session7-start.log): held to 128 registers (2 CTAs per
// SM), the 16-token streaming tile (config 16) beats configs 15, 0 and 11 at M = 16 on all 7 shapes (by 20-30%;
// 8192 -> 28672: 80.1 -> 61.1 us) and loses to config 15 at M = 1; the 32-token tile (config 18) beats every
// other config at M = 32 on all 7 (4096 -> 4096: 20.5 -> 11.0 us, 8192 -> 28672: 127.6 -> 112.1) and loses to
// config 11 at M = 64 on 6/7. So: 15 for M <= 8, 16 for 9..16, 18 for 17..32, 11 above.
// Thirteenth session (bench/results/results-h200-2026-12-03-session13-gemm-tma.log): the TMA-fed kernel (config 19, 6 + 3
// stages) beats config 11 on 33 of 35 rows at M = 64..4096 (by 0.5-6%) and loses on 28672 -> 8192 at M = 64 (1.7%)
// and 128 (0.4%); it takes every M >= kWsMinM that it supports (config 11 the rest).
// Sixteenth session (results.md §14c): config 23 (two groups per TMA copy, float2 column scales) beats 19 on 27 of
// 28 rows of M = 64..4096 (by up to 2.8%; one tie at M = 64), and replaces it.
constexpr int64_t kWgmmaMinM = 128;
constexpr int64_t kStream8MaxM = 8;
constexpr int64_t kStream16MaxM = 16;
constexpr int64_t kStream32MaxM = 32;
constexpr int64_t kWsMinM = 33;

// The auto choice of configuration (see the measurements above). The streaming kernels need sm_80+ only
// (mma.sync), so they serve every device the library runs on.
int auto_config(const Params& p) {
  if (p.M <= kStream8MaxM) return 15;
  if (p.M <= kStream16MaxM) return 16;
  if (p.M <= kStream32MaxM) return 18;
  int cfg = p.M <= 128 ? 1 : 2;
  if (atom_gemm_wgmma_available()) {
    if (p.M >= kWsMinM && tma_supports(p)) cfg = 23;
    else if (p.M >= kWsMinM && ws_supports(p)) cfg = 11;
    else if (kWgmmaMinM > 0 && p.M >= kWgmmaMinM) cfg = 3;
  }
  return cfg;
}

template <int WGS, int MODE = 0, bool SPLITN = false>
KernelLaunch wgmma_kernel() {
  using S = wg::Shape<WGS>;
  // 2: the split-K heuristic these kernels were measured with (two waves' worth of blocks)
  return {atom_gemm_wgmma_kernel<WGS, MODE, SPLITN>, S::BM, wg::BN, S::kThreads, S::kSmem, 2};
}

// A per-thread split-K workspace that grows but never frees a buffer it has handed out: a decode step's CUDA
// graph (gpu_model_graphs.cpp) keeps the pointers it was captured with, and a later, larger eager step must
// not free them under it. The floors cover every split-K launch (split-K runs only when the tiles leave CTA
// slots idle: M * N <= SMs * CTAs per SM * tile, about 2.2 M elements on an H100 / H200), so a second
// buffer is the exception.
template <typename T>
class StableWorkspace {
 public:
  // A buffer of at least `need` (and `floor`) elements; *fresh is set when it was just allocated.
  T* get(size_t need, size_t floor, bool* fresh = nullptr) {
    const bool grow = cur_.size() < need;
    if (grow) {
      if (cur_.size()) retired_.push_back(std::move(cur_));
      cur_.resize(std::max(need, floor));
    }
    if (fresh) *fresh = grow;
    return cur_.data();
  }
  size_t size() const { return cur_.size(); }

 private:
  DeviceBuffer<T> cur_;
  std::vector<DeviceBuffer<T>> retired_;  // still referenced by graphs captured before the growth
};

}  // namespace

void launch_gemm(Params p, const KernelLaunch& k, int splits, int sm_count, cudaStream_t s) {
  const void* fn = k.tma_fn ? reinterpret_cast<const void*>(k.tma_fn) : reinterpret_cast<const void*>(k.fn);
  allow_dynamic_smem(fn, size_t(k.smem));
  const int gx = (p.N + k.bn - 1) / k.bn, gy = (p.M + k.bm - 1) / k.bm;
  if (splits <= 0) {  // auto: fill the resident CTA slots once, each split at least 4 groups deep
    splits = 1;
    const int blocks = gx * gy, target = k.ctas_per_sm * sm_count;
    // kernels with one CTA per SM: a whole number of waves (no ragged second wave)
    const int want = k.ctas_per_sm > 1 ? (target + blocks - 1) / blocks : target / std::max(1, blocks);
    if (blocks < target) splits = std::max(1, std::min(want, p.G / 4));
  }
  splits = std::max(1, std::min(splits, std::max(1, p.G)));
  p.groups_per_split = (p.G + splits - 1) / splits;
  splits = std::max(1, (p.G + p.groups_per_split - 1) / p.groups_per_split);

  const dim3 grid(gx, gy, splits);
  // (the tensor maps hold p's pointers: built from the final p, right before the launch)
  TmaParams tp;
  auto launch = [&] {
    void* args[1] = {&p};
    if (k.tma_fn) {
      tp = make_tma_params(p, k.tma_groups);
      args[0] = &tp;
    }
    ATOM_CUDA_CHECK(cudaLaunchKernel(fn, grid, dim3(k.threads), args, size_t(k.smem), s));
  };
  // One set of workspaces per host thread: GEMMs of one thread run on one stream.
  constexpr size_t kWorkspaceFloor = size_t(1) << 22;  // fp32 elements (16 MiB)
  if (splits > 1 && k.splitk_sum) {
    static thread_local StableWorkspace<float> partials;
    static thread_local StableWorkspace<int> counters;
    const size_t need = size_t(splits) * p.M * p.N, tiles = size_t(gx) * gy;
    p.partials = partials.get(need, kWorkspaceFloor);
    bool fresh = false;
    p.counters = counters.get(tiles, size_t(1) << 14, &fresh);
    if (fresh)  // then self-resetting: each tile's last CTA re-arms its counter
      ATOM_CUDA_CHECK(cudaMemsetAsync(p.counters, 0, counters.size() * sizeof(int), s));
    launch();
    return;
  }
  static thread_local StableWorkspace<float> workspace;
  __half* y16 = p.y16;
  if (splits > 1) {
    p.atomic_out = true;
    if (!p.y32) p.y32 = workspace.get(size_t(p.M) * p.N, kWorkspaceFloor);
    ATOM_CUDA_CHECK(cudaMemsetAsync(p.y32, 0, size_t(p.M) * p.N * sizeof(float), s));
  }
  launch();
  if (splits > 1 && y16) {
    const int64_t n = int64_t(p.M) * p.N;
    f32_to_f16_kernel<<<unsigned(std::min<int64_t>((n + 255) / 256, 4 * sm_count * 8)), 256, 0, s>>>(p.y32, y16, n);
    ATOM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace gemm_detail

int atom_gemm_num_configs() { return 24; }
int atom_gemm_wgmma_config() { return 3; }
int atom_gemm_ws_config() { return 7; }

bool atom_gemm_wgmma_available() {
  return device_runs_sm90a();
}

void atom_gemm(const GpuAtomActs& a, const GpuAtomWeights& w, uint16_t* y_fp16, float* y_f32, int32_t* psums,
               cudaStream_t s, int force_config, int force_splits) {
  ATOM_CUDA_REQUIRE((y_fp16 == nullptr) != (y_f32 == nullptr), "atom_gemm: exactly one output must be given");
  ATOM_CUDA_REQUIRE(a.m <= (int64_t(1) << 30) && w.n <= (int64_t(1) << 30), "atom_gemm: size out of range");
  if (a.m == 0 || w.n == 0) return;
  ATOM_CUDA_REQUIRE(!psums || a.m * w.n * (w.L.n_groups + 1) < (int64_t(1) << 31),
                    "atom_gemm: psums (tests) holds at most 2^31 sums (the kernels index it in 32 bits)");
  ATOM_CUDA_REQUIRE(int64_t(a.scale.size()) >= w.L.scale_elems(a.m) && int64_t(w.scale.size()) >= w.L.scale_elems(w.n),
                    "atom_gemm: a scale buffer is smaller than GpuAtomLayout::scale_elems(rows)");
  using namespace gemm_detail;
  const int sm_count = device_sm_count();  // the current device's (a static cached the first device's, unlocked)
  Params p{};
  p.a4 = a.q4.data(); p.sa = reinterpret_cast<const __half*>(a.scale.data());
  p.a8 = a.q8.data(); p.sao = reinterpret_cast<const __half*>(a.oscale.data());
  p.w4 = w.q4.data(); p.sw = reinterpret_cast<const __half*>(w.scale.data());
  p.w8 = w.q8.data(); p.swo = reinterpret_cast<const __half*>(w.oscale.data());
  p.M = int(a.m); p.N = int(w.n); p.G = int(w.L.n_groups); p.O = int(w.L.n_outlier);
  p.y16 = reinterpret_cast<__half*>(y_fp16); p.y32 = y_f32; p.psums = psums; p.atomic_out = false;
  const int cfg = force_config >= 0 ? force_config : auto_config(p);
  switch (cfg) {
    case 0:
    case 1:
    case 2:
    case 12:  // the decode kernel with A / B swapped: 64 weight rows x 8 tokens
    case 13:  // the same, 128 weight rows
      launch_gemm(p, mma_sync_kernel(cfg), force_splits, sm_count, s);
      break;
    case 3: launch_gemm(p, wgmma_kernel<2>(), force_splits, sm_count, s); break;
    case 4: launch_gemm(p, wgmma_kernel<1>(), force_splits, sm_count, s); break;
    case 5: launch_gemm(p, wgmma_kernel<2, 0, true>(), force_splits, sm_count, s); break;
    case 6: launch_gemm(p, wgmma_kernel<1, 0, true>(), force_splits, sm_count, s); break;
    case 7:  // warp-specialized, 6-stage ring (more than 128 outliers: the wgmma kernel)
    case 8:  // the same with a 5-stage ring
    case 9:  // config 7 with the one-step consumer loop ptxas does not serialize
    case 10:  // config 7 with the two-step consumer loop
    case 11:  // config 9 with config 8's 5-stage ring
      launch_gemm(p, ws_supports(p) ? ws_kernel(p.psums != nullptr, 0, cfg - 7) : wgmma_kernel<2>(), force_splits,
                  sm_count, s);
      break;
    case 17:  // config 9 with split-K summed by the tile's last CTA (no memset, atomics, conversion)
      launch_gemm(p, ws_supports(p) ? ws_kernel(p.psums != nullptr, 0, 6) : wgmma_kernel<2>(), force_splits, sm_count, s);
      break;
    case 19:  // the TMA-fed warp-specialized kernel: 6 packed + 3 unpacked stages (config 11 where it cannot run)
    case 20:  // the same with A unpacked by the producer too: both wgmma operands in shared memory
    case 21:  // config 20 with the first half's scales loaded before the wgmma
    case 22:  // config 19 with two groups per TMA box row (128-byte rows): 4 + 3 stages
    case 23:  // config 22 with float2 column scales (half the consumers' scale loads): dispatched
      launch_gemm(p, tma_supports(p) ? tma_kernel(p.psums != nullptr, cfg - 19) : ws_kernel(p.psums != nullptr, 0, 4),
                  force_splits, sm_count, s);
      break;
    case 15:  // streaming decode kernel, 16 weight rows x 8 tokens, no shared-memory staging
    case 16:  // the same, 16 tokens
      launch_gemm(p, stream_kernel(cfg - 14), force_splits, sm_count, s);
      break;
    case 18:  // the same, 32 tokens (one group in flight per warp)
      launch_gemm(p, stream_kernel(4), force_splits, sm_count, s);
      break;
    case 14:  // config 9 with the consumer warpgroups' wgmma in turns (ping-pong)
      launch_gemm(p, ws_supports(p) ? ws_kernel(p.psums != nullptr, 0, 5) : wgmma_kernel<2>(), force_splits, sm_count, s);
      break;
    // diagnostics (benchmark only; wrong results): config 3 without the promotion / without the unpacking
    case 101: launch_gemm(p, wgmma_kernel<2, 1>(), force_splits, sm_count, s); break;
    case 102: launch_gemm(p, wgmma_kernel<2, 2>(), force_splits, sm_count, s); break;
    case 103: launch_gemm(p, wgmma_kernel<2, 3>(), force_splits, sm_count, s); break;
    case 104: launch_gemm(p, wgmma_kernel<1, 1>(), force_splits, sm_count, s); break;
    // diagnostics of config 9 (its loop): no promotion / no B unpacking / no wgmma / neither wgmma nor promotion
    case 105: launch_gemm(p, ws_kernel(false, 1), force_splits, sm_count, s); break;
    case 106: launch_gemm(p, ws_kernel(false, 2), force_splits, sm_count, s); break;
    case 107: launch_gemm(p, ws_kernel(false, 4), force_splits, sm_count, s); break;
    case 108: launch_gemm(p, ws_kernel(false, 5), force_splits, sm_count, s); break;
    // diagnostics of config 19: no promotion / no B unpacking / no wgmma / neither wgmma nor promotion
    case 112: launch_gemm(p, tma_kernel(false, 0, 1), force_splits, sm_count, s); break;
    case 113: launch_gemm(p, tma_kernel(false, 0, 2), force_splits, sm_count, s); break;
    case 114: launch_gemm(p, tma_kernel(false, 0, 4), force_splits, sm_count, s); break;
    case 115: launch_gemm(p, tma_kernel(false, 0, 5), force_splits, sm_count, s); break;
    // diagnostics of config 22: no promotion / neither wgmma nor promotion
    case 116: launch_gemm(p, tma_kernel(false, 3, 1), force_splits, sm_count, s); break;
    case 117: launch_gemm(p, tma_kernel(false, 3, 5), force_splits, sm_count, s); break;
    // diagnostics of config 23: no promotion / no B unpacking / no wgmma / neither wgmma nor promotion
    case 118: launch_gemm(p, tma_kernel(false, 4, 1), force_splits, sm_count, s); break;
    case 119: launch_gemm(p, tma_kernel(false, 4, 2), force_splits, sm_count, s); break;
    case 120: launch_gemm(p, tma_kernel(false, 4, 4), force_splits, sm_count, s); break;
    case 121: launch_gemm(p, tma_kernel(false, 4, 5), force_splits, sm_count, s); break;
    // diagnostic of config 0: weights read in a 64-row-block layout (does DRAM locality bound decode?)
    case 109: launch_gemm(p, mma_sync_kernel(109), force_splits, sm_count, s); break;
    // config 0 with deeper stage rings (timing only, not in the tests' config loop)
    case 110:
    case 111: launch_gemm(p, mma_sync_kernel(cfg), force_splits, sm_count, s); break;
    default: ATOM_CUDA_REQUIRE(false, "atom_gemm: unknown force_config (see atom_gemm.h)");
  }
}

}  // namespace atom::cuda
