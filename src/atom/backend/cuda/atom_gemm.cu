// W4A4 + INT8-outlier GEMM, first version: mma.sync m16n8k32 s8 (INT4 unpacked to INT8 in registers),
// cp.async multi-stage shared-memory pipeline, one 128-deep group per k-step with the FP32 promotion
// y += fp32(s_a*s_w) * float(P) right after it, the INT8 outlier tail last; optional split-K over
// groups (fp32 atomics) for small M. Layouts: atom_gemm.h.
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda {
namespace {

constexpr int kQ4Stride = 80;   // bytes per smem row of one INT4 group (64 + 16 pad: conflict-free)
constexpr int kQ8Stride = 144;  // bytes per smem row of a 128-wide INT8 outlier chunk (128 + 16 pad)

template <int BM_, int BN_, int WM_, int WN_, int S_>
struct Cfg {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, S = S_;
  static constexpr int kThreads = 32 * WM * WN;
  static constexpr int TM = BM / WM, TN = BN / WN, MT = TM / 16, NT = TN / 8;
  static constexpr int kSmem = S * (BM + BN) * kQ4Stride;
  static_assert(TM % 16 == 0 && TN % 8 == 0);
  static_assert(BM * kQ8Stride <= S * BM * kQ4Stride && BN * kQ8Stride <= S * BN * kQ4Stride);
};

struct Params {
  const uint8_t* a4; const __half* sa; const int8_t* a8; const __half* sao;
  const uint8_t* w4; const __half* sw; const int8_t* w8; const __half* swo;
  int M, N, G, O, groups_per_split;
  __half* y16; float* y32; int32_t* psums; bool atomic_out;
};

template <class C>
__device__ __forceinline__ void promote(const Params& p, int32_t (&acc)[C::MT][C::NT][4], float (&facc)[C::MT][C::NT][4],
                                        int m_base, int n_base, int g, bool outlier) {
  const int lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  const int Gt = p.G + (p.O > 0 ? 1 : 0);
  float sa[C::MT][2], sw[C::NT][2];
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = m_base + i * 16 + gq + h * 8;
      sa[i][h] = r < p.M ? __half2float(outlier ? p.sao[r] : p.sa[int64_t(r) * p.G + g]) : 0.0f;
    }
#pragma unroll
  for (int j = 0; j < C::NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = n_base + j * 8 + 2 * t + h;
      sw[j][h] = c < p.N ? __half2float(outlier ? p.swo[c] : p.sw[int64_t(c) * p.G + g]) : 0.0f;
    }
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float s = sa[i][e / 2] * sw[j][e % 2];  // exact: product of two fp16 values
        facc[i][j][e] = fmaf(float(acc[i][j][e]), s, facc[i][j][e]);
        if (p.psums) {
          const int r = m_base + i * 16 + gq + (e / 2) * 8, c = n_base + j * 8 + 2 * t + (e % 2);
          if (r < p.M && c < p.N) p.psums[(int64_t(r) * p.N + c) * Gt + (outlier ? p.G : g)] = acc[i][j][e];
        }
        acc[i][j][e] = 0;
      }
}

template <class C>
__global__ void __launch_bounds__(C::kThreads) atom_gemm_kernel(const Params p) {
  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* sA = smem;                                // [S][BM][80]
  uint8_t* sB = smem + C::S * C::BM * kQ4Stride;     // [S][BN][80]
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, t = lane % 4;
  const int wm = warp / C::WN, wn = warp % C::WN;
  const int m0 = blockIdx.y * C::BM, n0 = blockIdx.x * C::BN;
  const int g_begin = blockIdx.z * p.groups_per_split;
  const int g_end = min(p.G, g_begin + p.groups_per_split);
  const int64_t rb = int64_t(p.G) * 64;  // q4 row bytes

  auto load_stage = [&](int stage, int g) {
    uint8_t* a = sA + stage * C::BM * kQ4Stride;
    uint8_t* b = sB + stage * C::BN * kQ4Stride;
    for (int i = tid; i < C::BM * 4; i += C::kThreads) {
      const int r = i / 4, c = i % 4;
      const bool ok = m0 + r < p.M;
      ptx::cp_async_16(a + r * kQ4Stride + c * 16, ok ? p.a4 + (m0 + r) * rb + g * 64 + c * 16 : p.a4, ok);
    }
    for (int i = tid; i < C::BN * 4; i += C::kThreads) {
      const int r = i / 4, c = i % 4;
      const bool ok = n0 + r < p.N;
      ptx::cp_async_16(b + r * kQ4Stride + c * 16, ok ? p.w4 + (n0 + r) * rb + g * 64 + c * 16 : p.w4, ok);
    }
  };

  int32_t acc[C::MT][C::NT][4];
  float facc[C::MT][C::NT][4];
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0, facc[i][j][e] = 0.0f;

  const int m_base = m0 + wm * C::TM, n_base = n0 + wn * C::TN;
#pragma unroll
  for (int s = 0; s < C::S - 1; ++s) {
    if (g_begin + s < g_end) load_stage(s, g_begin + s);
    ptx::cp_async_commit();
  }
  int stage = 0;
  for (int g = g_begin; g < g_end; ++g) {
    ptx::cp_async_wait<C::S - 2>();
    __syncthreads();
    {
      const int gn = g + C::S - 1;
      if (gn < g_end) load_stage((stage + C::S - 1) % C::S, gn);
      ptx::cp_async_commit();
    }
    const uint8_t* a = sA + stage * C::BM * kQ4Stride + (wm * C::TM) * kQ4Stride;
    const uint8_t* b = sB + stage * C::BN * kQ4Stride + (wn * C::TN) * kQ4Stride;
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      uint32_t af[C::MT][4], bf[C::NT][2];
#pragma unroll
      for (int i = 0; i < C::MT; ++i) {
        const uint32_t w0 = *reinterpret_cast<const uint32_t*>(a + (i * 16 + gq) * kQ4Stride + kk * 16 + t * 4);
        const uint32_t w1 = *reinterpret_cast<const uint32_t*>(a + (i * 16 + gq + 8) * kQ4Stride + kk * 16 + t * 4);
        ptx::unpack_int4x8(w0, af[i][0], af[i][2]);
        ptx::unpack_int4x8(w1, af[i][1], af[i][3]);
      }
#pragma unroll
      for (int j = 0; j < C::NT; ++j) {
        const uint32_t w = *reinterpret_cast<const uint32_t*>(b + (j * 8 + gq) * kQ4Stride + kk * 16 + t * 4);
        ptx::unpack_int4x8(w, bf[j][0], bf[j][1]);
      }
#pragma unroll
      for (int i = 0; i < C::MT; ++i)
#pragma unroll
        for (int j = 0; j < C::NT; ++j)
          ptx::mma_s8_16832(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1]);
    }
    promote<C>(p, acc, facc, m_base, n_base, g, false);
    stage = (stage + 1) % C::S;
  }
  ptx::cp_async_wait<0>();
  __syncthreads();

  // INT8 outlier tail (split 0 only), in 128-wide chunks, reusing the pipeline's shared memory.
  if (p.O > 0 && blockIdx.z == 0) {
    for (int o0 = 0; o0 < p.O; o0 += 128) {
      for (int i = tid; i < C::BM * 8; i += C::kThreads) {
        const int r = i / 8, c = i % 8;
        const bool ok = m0 + r < p.M && o0 + c * 16 < p.O;
        ptx::cp_async_16(sA + r * kQ8Stride + c * 16, ok ? p.a8 + int64_t(m0 + r) * p.O + o0 + c * 16 : p.a8, ok);
      }
      for (int i = tid; i < C::BN * 8; i += C::kThreads) {
        const int r = i / 8, c = i % 8;
        const bool ok = n0 + r < p.N && o0 + c * 16 < p.O;
        ptx::cp_async_16(sB + r * kQ8Stride + c * 16, ok ? p.w8 + int64_t(n0 + r) * p.O + o0 + c * 16 : p.w8, ok);
      }
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      __syncthreads();
      const uint8_t* a = sA + (wm * C::TM) * kQ8Stride;
      const uint8_t* b = sB + (wn * C::TN) * kQ8Stride;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t af[C::MT][4], bf[C::NT][2];
#pragma unroll
        for (int i = 0; i < C::MT; ++i) {
          const uint8_t* r0 = a + (i * 16 + gq) * kQ8Stride + kk * 32 + t * 4;
          const uint8_t* r1 = r0 + 8 * kQ8Stride;
          af[i][0] = *reinterpret_cast<const uint32_t*>(r0);
          af[i][1] = *reinterpret_cast<const uint32_t*>(r1);
          af[i][2] = *reinterpret_cast<const uint32_t*>(r0 + 16);
          af[i][3] = *reinterpret_cast<const uint32_t*>(r1 + 16);
        }
#pragma unroll
        for (int j = 0; j < C::NT; ++j) {
          const uint8_t* c0 = b + (j * 8 + gq) * kQ8Stride + kk * 32 + t * 4;
          bf[j][0] = *reinterpret_cast<const uint32_t*>(c0);
          bf[j][1] = *reinterpret_cast<const uint32_t*>(c0 + 16);
        }
#pragma unroll
        for (int i = 0; i < C::MT; ++i)
#pragma unroll
          for (int j = 0; j < C::NT; ++j)
            ptx::mma_s8_16832(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1]);
      }
      __syncthreads();
    }
    // the outlier partial sums of all chunks are one term (P_o over all O channels)
    promote<C>(p, acc, facc, m_base, n_base, 0, true);
  }

  // epilogue
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = m_base + i * 16 + gq + h * 8;
        const int c = n_base + j * 8 + 2 * t;
        if (r >= p.M) continue;
        const float v0 = facc[i][j][2 * h], v1 = facc[i][j][2 * h + 1];
        const int64_t o = int64_t(r) * p.N + c;
        if (p.atomic_out) {
          if (c < p.N) atomicAdd(p.y32 + o, v0);
          if (c + 1 < p.N) atomicAdd(p.y32 + o + 1, v1);
        } else if (p.y32) {
          if (c < p.N) p.y32[o] = v0;
          if (c + 1 < p.N) p.y32[o + 1] = v1;
        } else if (c + 1 < p.N && (p.N % 2) == 0) {
          *reinterpret_cast<__half2*>(p.y16 + o) = __floats2half2_rn(v0, v1);
        } else {
          if (c < p.N) p.y16[o] = __float2half_rn(v0);
          if (c + 1 < p.N) p.y16[o + 1] = __float2half_rn(v1);
        }
      }
}

__global__ void f32_to_f16_kernel(const float* __restrict__ x, __half* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2half_rn(x[i]);
}

// The tile configurations (index = force_config).
using Cfg0 = Cfg<16, 64, 1, 4, 4>;    // decode, M <= 16
using Cfg1 = Cfg<64, 64, 2, 2, 4>;    // M <= 128
using Cfg2 = Cfg<128, 128, 2, 4, 3>;  // large M

template <class C>
void launch(Params p, int splits, int sm_count, cudaStream_t s) {
  static bool attr_set = false;  // per template instance
  if (!attr_set) {
    ATOM_CUDA_CHECK(cudaFuncSetAttribute(atom_gemm_kernel<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmem));
    attr_set = true;
  }
  const int gx = (p.N + C::BN - 1) / C::BN, gy = (p.M + C::BM - 1) / C::BM;
  if (splits <= 0) {  // auto: about two waves of blocks, each split at least 4 groups deep
    splits = 1;
    const int blocks = gx * gy;
    if (blocks < 2 * sm_count) splits = std::max(1, std::min((2 * sm_count + blocks - 1) / blocks, p.G / 4));
  }
  splits = std::max(1, std::min(splits, std::max(1, p.G)));
  p.groups_per_split = (p.G + splits - 1) / splits;
  splits = std::max(1, (p.G + p.groups_per_split - 1) / p.groups_per_split);

  static thread_local DeviceBuffer<float> workspace;
  __half* y16 = p.y16;
  if (splits > 1) {
    p.atomic_out = true;
    if (!p.y32) {
      workspace.resize(std::max(workspace.size(), size_t(p.M) * p.N));
      p.y32 = workspace.data();
    }
    ATOM_CUDA_CHECK(cudaMemsetAsync(p.y32, 0, size_t(p.M) * p.N * sizeof(float), s));
  }
  atom_gemm_kernel<C><<<dim3(gx, gy, splits), C::kThreads, C::kSmem, s>>>(p);
  ATOM_CUDA_CHECK_LAUNCH();
  if (splits > 1 && y16) {
    const int64_t n = int64_t(p.M) * p.N;
    f32_to_f16_kernel<<<unsigned(std::min<int64_t>((n + 255) / 256, 4 * sm_count * 8)), 256, 0, s>>>(p.y32, y16, n);
    ATOM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

int atom_gemm_num_configs() { return 3; }

void atom_gemm(const GpuAtomActs& a, const GpuAtomWeights& w, uint16_t* y_fp16, float* y_f32, int32_t* psums,
               cudaStream_t s, int force_config, int force_splits) {
  ATOM_CUDA_REQUIRE((y_fp16 == nullptr) != (y_f32 == nullptr), "atom_gemm: exactly one output must be given");
  ATOM_CUDA_REQUIRE(a.m <= (int64_t(1) << 30) && w.n <= (int64_t(1) << 30), "atom_gemm: size out of range");
  if (a.m == 0 || w.n == 0) return;
  static int sm_count = 0;
  if (!sm_count) {
    int dev = 0;
    ATOM_CUDA_CHECK(cudaGetDevice(&dev));
    ATOM_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count, cudaDevAttrMultiProcessorCount, dev));
  }
  Params p{};
  p.a4 = a.q4.data(); p.sa = reinterpret_cast<const __half*>(a.scale.data());
  p.a8 = a.q8.data(); p.sao = reinterpret_cast<const __half*>(a.oscale.data());
  p.w4 = w.q4.data(); p.sw = reinterpret_cast<const __half*>(w.scale.data());
  p.w8 = w.q8.data(); p.swo = reinterpret_cast<const __half*>(w.oscale.data());
  p.M = int(a.m); p.N = int(w.n); p.G = int(w.L.n_groups); p.O = int(w.L.n_outlier);
  p.y16 = reinterpret_cast<__half*>(y_fp16); p.y32 = y_f32; p.psums = psums; p.atomic_out = false;
  int cfg = force_config;
  if (cfg < 0) cfg = a.m <= 16 ? 0 : a.m <= 128 ? 1 : 2;
  switch (cfg) {
    case 0: launch<Cfg0>(p, force_splits, sm_count, s); break;
    case 1: launch<Cfg1>(p, force_splits, sm_count, s); break;
    default: launch<Cfg2>(p, force_splits, sm_count, s); break;
  }
}

}  // namespace atom::cuda
