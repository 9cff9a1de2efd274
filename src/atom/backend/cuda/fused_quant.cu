// Fused activation kernels (fused_quant.h): one templated kernel, one block per row (per row and chunk of
// Atom groups when the rows are too few to fill the GPU: each chunk's block redoes phase 1, which is cheap
// next to waiting for one block to walk all the groups; decode rows took 6-24 us that way).
//   phase 1  the op (RMSNorm / copy / SiLU·up) in fp32 from 16-byte vector loads; the result is staged in
//            shared memory fp16-rounded (S = __half) or in fp32 (S = float, FusedOut::quant_from_f32), and
//            written out as fp16 if asked
//   phase 2  the quantizers read the staged row: W8A8 (block max, then INT8) and/or Atom (one warp per
//            128-channel group or the outlier tail, gathering through perm — shared-memory reads, so
//            the reorder costs no extra device-memory traffic).
// The scalar rules are quantize.h's, reproduced bit for bit (IEEE division, rint, fp16 scales).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/fused_quant.h"
#include "atom/backend/cuda/quant_rules.cuh"

namespace atom::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int64_t kMaxK = 32768;  // 64 KiB of staged fp16 row, 128 KiB of fp32
enum Op { kNorm = 0, kCopy = 1, kSilu = 2 };

using quant_rules::sym_quant;
using quant_rules::sym_scale_fp16;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reductions over kThreads threads (result broadcast to all).
__device__ double block_sum(double v, double* red) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  double t = 0;
  for (int w = 0; w < kWarps; ++w) t += red[w];
  __syncthreads();
  return t;
}
__device__ float block_max(float v, float* red) {
  v = warp_max(v);
  if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
  __syncthreads();
  float t = 0.0f;
  for (int w = 0; w < kWarps; ++w) t = fmaxf(t, red[w]);
  __syncthreads();
  return t;
}

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

// 8 consecutive elements from a 16-byte-aligned (32 for fp32) address.
template <typename T>
__device__ __forceinline__ void load8(const T* p, float (&v)[8]) {
  if constexpr (sizeof(T) == 4) {
    const float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
    v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
  } else {
    const uint4 u = __ldg(reinterpret_cast<const uint4*>(p));
    const T* e = reinterpret_cast<const T*>(&u);
#pragma unroll
    for (int i = 0; i < 8; ++i) v[i] = to_f(e[i]);
  }
}

struct Params {
  const void* x;
  int64_t m, K, ld;  // ld: input row stride (elements)
  const int32_t* rows;
  const float* w;
  float eps;
  __half* f16;
  int8_t* i8;
  float* i8_scale;
  const float* smooth;
  uint8_t* q4;
  __half* scale;
  int8_t* q8;
  __half* oscale;
  const int32_t* perm;
  int G, kn, O;
  float a_clip, o_clip;
  int seg_chunk;  // Atom segments (groups + outlier tail) per block along blockIdx.y
  bool vec;       // 8-wide vector loads are aligned
  bool w_vec;     // ... and so are the norm weights' (32 bytes)
};

// Atom segments of a row: the INT4 groups plus the INT8 outlier tail (none without an Atom output).
__host__ __device__ __forceinline__ int atom_segments(const Params& p) { return p.q4 ? p.G + (p.O > 0 ? 1 : 0) : 0; }

// The op on one element of the row (fp32): RMSNorm's w*(x*r) (cpu::rmsnorm's order), SiLU(g)*u.
// u: SiLU's `up` value, w: RMSNorm's weight (each unused otherwise).
template <int OP>
__device__ __forceinline__ float op_value(float xv, float u, float w, float rstd) {
  if constexpr (OP == kNorm) return __fmul_rn(w, __fmul_rn(xv, rstd));
  if constexpr (OP == kSilu) return __fmul_rn(__fdiv_rn(xv, __fadd_rn(1.0f, expf(-xv))), u);
  return xv;
}

// INT4 group `seg` of row i from this lane's 4 gathered values (group elements 4*lane .. 4*lane+3):
// the warp's max, the fp16 scale, the nibbles in MMA order (atom_gemm.h: chunk c = lane/8, word t = lane%4,
// half = (lane%8)/4).
__device__ __forceinline__ void quant_group(const Params& p, int64_t i, int seg, int lane, const float (&v)[4]) {
  float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
  amax = warp_max(amax);
  __half hs;
  const float s = sym_scale_fp16(amax, p.a_clip, 7.0f, hs);
  uint32_t packed = 0;
#pragma unroll
  for (int e = 0; e < 4; ++e) packed |= uint32_t(sym_quant(v[e], s, -8.0f, 7.0f) & 0xF) << (4 * e);
  const int off = (lane / 8) * 16 + (lane % 4) * 4 + ((lane % 8) / 4) * 2;
  *reinterpret_cast<uint16_t*>(p.q4 + i * int64_t(p.G) * 64 + seg * 64 + off) = uint16_t(packed);
  if (lane == 0) p.scale[i * p.G + seg] = hs;
}

template <int OP, typename T, typename S>
__global__ void __launch_bounds__(kThreads) fused_act_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  S* srow = reinterpret_cast<S*>(smem_raw);
  __shared__ double red_d[kWarps];
  __shared__ float red_f[kWarps];
  const int64_t i = blockIdx.x;
  const int64_t r = p.rows ? p.rows[i] : i;
  const T* xr = static_cast<const T*>(p.x) + r * p.ld;
  const int64_t K = p.K;

  // ---- phase 1: the op, staged in shared memory as S ----
  float rstd = 0.0f;
  if constexpr (OP == kNorm) {
    double ss = 0.0;  // squares of fp32 values are exact in double, as in cpu::rmsnorm
    if (p.vec) {
#pragma unroll 4
      for (int64_t j = int64_t(threadIdx.x) * 8; j < K; j += kThreads * 8) {
        float v[8];
        load8(xr + j, v);
#pragma unroll
        for (int e = 0; e < 8; ++e) ss += double(v[e]) * double(v[e]);
      }
    } else {
      for (int64_t j = threadIdx.x; j < K; j += kThreads) ss += double(to_f(xr[j])) * double(to_f(xr[j]));
    }
    ss = block_sum(ss, red_d);
    rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(float(ss / double(K)), p.eps)));
  }
  __half* f16 = p.f16 && blockIdx.y == 0 ? p.f16 + i * K : nullptr;
  if (p.vec) {
#pragma unroll 4
    for (int64_t j = int64_t(threadIdx.x) * 8; j < K; j += kThreads * 8) {
      float v[8], u[8] = {};
      load8(xr + j, v);
      if constexpr (OP == kSilu) load8(xr + K + j, u);
      float wv[8] = {};  // the norm weights, 8 at a time when aligned (a scalar load per value was ~1/8 of the issue)
      if constexpr (OP == kNorm) {
        if (p.w_vec) {
          load8(p.w + j, wv);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) wv[e] = __ldg(p.w + j + e);
        }
      }
      alignas(16) __half h[8];
      alignas(16) float f[8];
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        f[e] = op_value<OP>(v[e], u[e], wv[e], rstd);
        h[e] = __float2half_rn(f[e]);
      }
      if constexpr (sizeof(S) == 2) {
        *reinterpret_cast<uint4*>(srow + j) = *reinterpret_cast<const uint4*>(h);
      } else {
        *reinterpret_cast<float4*>(srow + j) = *reinterpret_cast<const float4*>(f);
        *reinterpret_cast<float4*>(srow + j + 4) = *reinterpret_cast<const float4*>(f + 4);
      }
      if (f16) *reinterpret_cast<uint4*>(f16 + j) = *reinterpret_cast<const uint4*>(h);
    }
  } else {
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float u = OP == kSilu ? to_f(xr[K + j]) : 0.0f;
      const float f = op_value<OP>(to_f(xr[j]), u, OP == kNorm ? __ldg(p.w + j) : 0.0f, rstd);
      const __half h = __float2half_rn(f);
      if constexpr (sizeof(S) == 2) srow[j] = h;
      else srow[j] = f;
      if (f16) f16[j] = h;
    }
  }
  __syncthreads();

  // ---- phase 2a: W8A8, per-token INT8 of x/smooth (one block per row then) ----
  if (p.i8) {
    float amax = 0.0f;
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float v = to_f(srow[j]);
      amax = fmaxf(amax, fabsf(p.smooth ? __fdiv_rn(v, __ldg(p.smooth + j)) : v));
    }
    amax = block_max(amax, red_f);
    __half hs;
    const float s = sym_scale_fp16(amax, 1.0f, 127.0f, hs);
    int8_t* q = p.i8 + i * K;
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float v = to_f(srow[j]);
      q[j] = int8_t(sym_quant(p.smooth ? __fdiv_rn(v, __ldg(p.smooth + j)) : v, s, -127.0f, 127.0f));
    }
    if (threadIdx.x == 0) p.i8_scale[i] = s;
  }

  // ---- phase 2b: Atom, one warp per INT4 group / the INT8 outlier tail ----
  // A warp takes kGroupsAtOnce full groups per step while it has them: their gathers are all issued before
  // the first reduction (one group at a time, each step waited for its perm loads and gathers alone).
  if (p.q4) {
    constexpr int kGroupsAtOnce = 4;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int seg_end = min(atom_segments(p), int(blockIdx.y + 1) * p.seg_chunk);
    const int full_groups = min(seg_end, p.kn / 128);  // groups with all 128 channels below kn
    int seg = int(blockIdx.y) * p.seg_chunk + warp;
    for (; seg + (kGroupsAtOnce - 1) * kWarps < full_groups; seg += kGroupsAtOnce * kWarps) {
      float v[kGroupsAtOnce][4];
#pragma unroll
      for (int u = 0; u < kGroupsAtOnce; ++u) {
        const int4 pj = __ldg(reinterpret_cast<const int4*>(p.perm + (seg + u * kWarps) * 128 + 4 * lane));
        v[u][0] = to_f(srow[pj.x]);
        v[u][1] = to_f(srow[pj.y]);
        v[u][2] = to_f(srow[pj.z]);
        v[u][3] = to_f(srow[pj.w]);
      }
#pragma unroll
      for (int u = 0; u < kGroupsAtOnce; ++u) quant_group(p, i, seg + u * kWarps, lane, v[u]);
    }
    for (; seg < seg_end; seg += kWarps) {
      if (seg < p.G) {
        float v[4];  // lane covers group elements 4*lane .. 4*lane+3
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int j = seg * 128 + 4 * lane + e;
          v[e] = j < p.kn ? to_f(srow[__ldg(p.perm + j)]) : 0.0f;
        }
        quant_group(p, i, seg, lane, v);
      } else {
        float amax = 0.0f;
        for (int e = lane; e < p.O; e += 32) amax = fmaxf(amax, fabsf(to_f(srow[__ldg(p.perm + p.kn + e)])));
        amax = warp_max(amax);
        __half hs;
        const float s = sym_scale_fp16(amax, p.o_clip, 127.0f, hs);
        for (int e = lane; e < p.O; e += 32)
          p.q8[i * p.O + e] = int8_t(sym_quant(to_f(srow[__ldg(p.perm + p.kn + e)]), s, -127.0f, 127.0f));
        if (lane == 0) p.oscale[i] = hs;
      }
    }
  }
}

template <int OP, typename T, typename S>
void launch_staged(const Params& p, cudaStream_t s) {
  allow_dynamic_smem(reinterpret_cast<const void*>(fused_act_kernel<OP, T, S>), size_t(kMaxK) * sizeof(S));
  const size_t smem = size_t((p.K + 7) / 8 * 8) * sizeof(S);
  const int chunks = std::max(1, (atom_segments(p) + p.seg_chunk - 1) / p.seg_chunk);
  fused_act_kernel<OP, T, S><<<dim3(unsigned(p.m), unsigned(chunks)), kThreads, smem, s>>>(p);
  ATOM_CUDA_CHECK_LAUNCH();
}

template <int OP, typename T>
void launch_typed(const Params& p, bool stage_f32, cudaStream_t s) {
  if (stage_f32) launch_staged<OP, T, float>(p, s);
  else launch_staged<OP, T, __half>(p, s);
}

template <int OP>
void launch(Params p, ActDtype dt, const FusedOut& out, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(p.K > 0 && p.K <= kMaxK, "fused activation kernel: K must be in [1, 32768]");
  ATOM_CUDA_REQUIRE(p.m >= 0 && p.m < (int64_t(1) << 31), "fused activation kernel: bad row count");
  ATOM_CUDA_REQUIRE(out.f16 || out.i8 || out.atom, "fused activation kernel: no output requested");
  ATOM_CUDA_REQUIRE(!out.i8 || out.i8_scale, "fused activation kernel: W8A8 output needs i8_scale");
  p.f16 = reinterpret_cast<__half*>(out.f16);
  p.i8 = out.i8;
  p.i8_scale = out.i8_scale;
  p.smooth = out.smooth;
  if (out.atom) {
    const GpuAtomLayout& L = out.L;
    ATOM_CUDA_REQUIRE(out.perm && L.k == p.K, "fused activation kernel: Atom layout/perm do not match K");
    ATOM_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(out.perm) % 16 == 0,
                      "fused activation kernel: perm must be 16-byte aligned (it is read 4 entries at a time)");
    GpuAtomActs& a = *out.atom;
    ATOM_CUDA_REQUIRE(int64_t(a.scale.size()) >= p.m * L.n_groups && int64_t(a.q4.size()) >= p.m * L.q4_row_bytes() &&
                          int64_t(a.q8.size()) >= p.m * L.n_outlier && (L.n_outlier == 0 || int64_t(a.oscale.size()) >= p.m),
                      "fused activation kernel: Atom activation buffers are too small for m rows");
    a.m = p.m;
    p.q4 = a.q4.data();
    p.scale = reinterpret_cast<__half*>(a.scale.data());
    p.q8 = a.q8.data();
    p.oscale = reinterpret_cast<__half*>(a.oscale.data());
    p.perm = out.perm;
    p.G = int(L.n_groups);
    p.kn = int(L.k_normal);
    p.O = int(L.n_outlier);
    p.a_clip = out.a_clip;
    p.o_clip = out.a_outlier_clip;
  }
  if (p.m == 0) return;
  // Rows too few for the SMs: split the Atom segments over blocks, at least one per warp each, so that
  // about two blocks per SM run (never with the W8A8 output, which needs the whole row in one block).
  p.seg_chunk = 1 << 30;
  if (out.atom && !out.i8) {
    static const int sms = device_props().sm_count;
    const int64_t segs = atom_segments(p);
    const int64_t want = std::min<int64_t>((segs + kWarps - 1) / kWarps, (2 * sms + p.m - 1) / p.m);
    if (want > 1) p.seg_chunk = int((segs + want - 1) / want);
  }
  // fp32 staging only matters for the quantizers (an fp16-only output reads the rounded value anyway)
  const bool stage_f32 = out.quant_from_f32 && (out.i8 || out.atom);
  const size_t esz = dt == ActDtype::F32 ? 4 : 2;
  p.vec = p.K % 8 == 0 && p.ld % 8 == 0 && reinterpret_cast<uintptr_t>(p.x) % (8 * esz) == 0 &&
          (!p.f16 || reinterpret_cast<uintptr_t>(p.f16) % 16 == 0);
  p.w_vec = p.vec && p.w && reinterpret_cast<uintptr_t>(p.w) % 32 == 0;
  switch (dt) {
    case ActDtype::F32: launch_typed<OP, float>(p, stage_f32, s); break;
    case ActDtype::F16: launch_typed<OP, __half>(p, stage_f32, s); break;
    case ActDtype::BF16: launch_typed<OP, __nv_bfloat16>(p, stage_f32, s); break;
  }
}

}  // namespace

void rmsnorm_quant(const void* x, ActDtype dt, int64_t m, int64_t K, const float* w, float eps, const FusedOut& out,
                   cudaStream_t s, const int32_t* rows) {
  ATOM_CUDA_REQUIRE(w != nullptr, "rmsnorm_quant: no norm weight");
  Params p{};
  p.x = x; p.m = m; p.K = K; p.ld = K; p.rows = rows; p.w = w; p.eps = eps;
  launch<kNorm>(p, dt, out, s);
}

void reorder_quant(const void* x, ActDtype dt, int64_t m, int64_t K, const FusedOut& out, cudaStream_t s) {
  Params p{};
  p.x = x; p.m = m; p.K = K; p.ld = K;
  launch<kCopy>(p, dt, out, s);
}

void silu_mul_quant(const void* gu, ActDtype dt, int64_t m, int64_t F, const FusedOut& out, cudaStream_t s) {
  Params p{};
  p.x = gu; p.m = m; p.K = F; p.ld = 2 * F;
  launch<kSilu>(p, dt, out, s);
}

// The o_proj-style quantizer of atom_gemm.h: reorder_quant on fp16 rows into `acts`.
void atom_quantize_acts_fp16(const uint16_t* x, int64_t m, const int32_t* perm, const GpuAtomLayout& L, float a_clip,
                             float a_outlier_clip, GpuAtomActs& acts, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(acts.m == m, "atom_quantize_acts_fp16: acts not resized for m rows");
  FusedOut o;
  o.atom = &acts;
  o.perm = perm;
  o.L = L;
  o.a_clip = a_clip;
  o.a_outlier_clip = a_outlier_clip;
  reorder_quant(x, ActDtype::F16, m, L.k, o, s);
}

}  // namespace atom::cuda
