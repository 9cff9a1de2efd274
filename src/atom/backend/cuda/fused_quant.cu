// Fused activation kernels (fused_quant.h): one templated kernel, one block per row (per row and chunk of
// Atom segments when the rows are too few to fill the GPU: each chunk's block redoes phase 1, which is cheap
// next to waiting for one block to walk all the groups; decode rows took 6-24 us that way).
//   phase 1  the op (RMSNorm / copy / SiLU·up) in fp32 from 16-byte vector loads (a plain copy for fp16 in,
//            fp16 staged), written out as fp16 if asked, and stored to shared memory fp16-rounded (S = __half)
//            or in fp32 (S = float, FusedOut::quant_from_f32) at each channel's place in the Atom order
//            (FusedOut::stage, atom_stage_table): the reorder is a scatter of shared-memory stores
//   phase 2  the quantizers read the staged row: W8A8 (block max, then INT8) and/or Atom (a team of 8 lanes
//            per 128-channel group or the outlier tail; each lane's 16 values are two conflict-free 16-byte
//            shared-memory loads, no perm lookups, one FMA per value: quant_rules::act_code_bits).
// The scalar rules are quantize.h's, reproduced bit for bit (fp16 scales; activations: one FMA per value,
// sym_quant_recip; W8A8: the IEEE division).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <type_traits>

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

// The max of two values; KeepNaN: max.NaN, where a NaN operand gives NaN (fmaxf drops it), so a segment's max
// tells whether it holds a NaN.
template <bool KeepNaN>
__device__ __forceinline__ float max2(float a, float b) {
  if constexpr (!KeepNaN) return fmaxf(a, b);
  float d;
  asm("max.NaN.f32 %0, %1, %2;" : "=f"(d) : "f"(a), "f"(b));
  return d;
}

// Max over aligned groups of W lanes (W = 32: the warp; 8: a phase-2 team), by xor shuffles within the group;
// KeepNaN: NaN-propagating.
template <int W, bool KeepNaN = false>
__device__ __forceinline__ float lanes_max(float v, unsigned mask = 0xffffffffu) {
#pragma unroll
  for (int o = W / 2; o > 0; o >>= 1) v = max2<KeepNaN>(v, __shfl_xor_sync(mask, v, o));
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
  v = lanes_max<32>(v);
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
  const uint16_t* stage;  // [K] staged position of each channel (Atom output), null: channel order
  int G, kn, O;
  float a_clip, o_clip;
  int64_t staged_len;  // elements of the staged row: K, or atom_staged_len with an Atom output
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
  // SiLU with the fast exponential and divide (one MUFU each, a few ulps): the accurate expf and the IEEE
  // division cost ~12 instructions per value more. The result differs from cpu::silu_mul's by a few fp32
  // ulps, so its fp16 rounding does by one ulp now and then (as expf alone did; the tests bound how often).
  if constexpr (OP == kSilu) return __fmul_rn(__fdividef(xv, __fadd_rn(1.0f, __expf(-xv))), u);
  return xv;
}

// ---- phase 2: one Atom segment (an INT4 group or the INT8 outlier tail) per team of 8 lanes ----
// Lane t of a team reads its 16 values as two 16-byte pieces of the staged segment, at 8t and 64 + 8t (the 8
// lanes of a team, one quarter-warp, cover all banks once per load). Which channels those are is fixed by
// the GEMM's layouts (atom_gemm.h) and baked into the staging table (atom_stage_table, fused_quant.h):
//   INT4 group  lane t = 2c + h: pieces = group elements 32c + 8h + [0, 8) (the low halves of words 2h, 2h+1
//               of chunk c) and 32c + 16 + 8h + [0, 8) (their high halves); the lane writes those 2 words
//   INT8 tail   lane t: tail elements 128k + 16t + [0, 16) of each 128-channel chunk k
// The team reduces its max with 3 shuffles; act_code_bits quantizes with one FMA per value.
constexpr int kTeam = 8;
constexpr int kTeams = kThreads / kTeam;

// max |v|; KeepNaN: NaN when a value is NaN (the segment's scale then comes from the max without, which skips
// NaN as quant::absmax does).
template <bool KeepNaN, int N>
__device__ __forceinline__ float absmax(const float (&v)[N]) {
  float m = 0.0f;
#pragma unroll
  for (int e = 0; e < N; ++e) m = max2<KeepNaN>(m, fabsf(v[e]));
  return m;
}

// 8 staged values from a 16-byte-aligned shared-memory address.
__device__ __forceinline__ void lds8(const __half* p, float* v) {
  const uint4 u = *reinterpret_cast<const uint4*>(p);
  const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
  for (int e = 0; e < 4; ++e) {
    const float2 f = __half22float2(h[e]);
    v[2 * e] = f.x;
    v[2 * e + 1] = f.y;
  }
}
__device__ __forceinline__ void lds8(const float* p, float* v) {
  const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

// A segment's scale from its team-wide max with NaN kept (amax_nan); when that is NaN, the max without the
// NaN values, which `nonan` recomputes (rare: only a broken input has NaN activations).
struct SegScale {
  float s, r;  // the scale and fl(1/s) (0 when s == 0)
  __half h;
};
template <typename F>
__device__ __forceinline__ SegScale seg_scale(float amax_nan, float clip, float qmax, unsigned mask, F nonan) {
  const float amax = isnan(amax_nan) ? lanes_max<kTeam>(nonan(), mask) : amax_nan;
  SegScale sc;
  sc.s = sym_scale_fp16(amax, clip, qmax, sc.h);
  sc.r = quant_rules::sym_recip(sc.s);
  return sc;
}

template <typename S>
__device__ __forceinline__ void quant_int4_group(const Params& p, int64_t i, const S* srow, int g, int t, unsigned mask) {
  float v[16];  // [0, 8): the low halves, [8, 16): the high halves (ragged-group padding is staged as 0)
  lds8(srow + g * 128 + 8 * t, v);
  lds8(srow + g * 128 + 64 + 8 * t, v + 8);
  const float amax = lanes_max<kTeam, true>(absmax<true>(v), mask);
  const SegScale sc = seg_scale(amax, p.a_clip, 7.0f, mask, [&] { return absmax<false>(v); });
  uint32_t b[16];
  quant_rules::act_code_bits<4>(v, amax, sc.r, b);
  const uint32_t w0[8] = {b[0], b[1], b[2], b[3], b[8], b[9], b[10], b[11]};
  const uint32_t w1[8] = {b[4], b[5], b[6], b[7], b[12], b[13], b[14], b[15]};
  *reinterpret_cast<uint2*>(p.q4 + i * int64_t(p.G) * 64 + g * 64 + 8 * t) =
      make_uint2(quant_rules::pack_codes<4>(w0), quant_rules::pack_codes<4>(w1));
  if (t == 0) p.scale[i * p.G + g] = sc.h;
}

// The INT8 outlier tail (O % 16 == 0, make_gpu_layout), staged from G * 128.
template <typename S>
__device__ __forceinline__ void quant_int8_tail(const Params& p, int64_t i, const S* srow, int t, unsigned mask) {
  const S* tail = srow + p.G * 128;
  auto load = [&](int c0, float (&v)[16]) {  // c0 = 128k + 16t
    lds8(tail + (c0 - 16 * t) + 8 * t, v);
    lds8(tail + (c0 - 16 * t) + 64 + 8 * t, v + 8);
  };
  auto store = [&](int c0, const float (&v)[16], float amax, float r) {
    uint32_t b[16];
    quant_rules::act_code_bits<8>(v, amax, r, b);
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = quant_rules::pack_codes<8>({b[4 * k], b[4 * k + 1], b[4 * k + 2], b[4 * k + 3]});
    *reinterpret_cast<uint4*>(p.q8 + i * p.O + c0) = make_uint4(w[0], w[1], w[2], w[3]);
  };
  // a lane's max over its chunks (nan: NaN kept); the first chunk stays in registers
  float v[16] = {};
  const bool first = 16 * t < p.O;
  if (first) load(16 * t, v);
  auto lane_max = [&](auto nan) {
    constexpr bool kNaN = decltype(nan)::value;
    float m = absmax<kNaN>(v);
    for (int c0 = 16 * t + 128; c0 < p.O; c0 += 128) {  // O > 128: loaded again in the quantize pass
      float u[16];
      load(c0, u);
      m = max2<kNaN>(m, absmax<kNaN>(u));
    }
    return m;
  };
  const float amax = lanes_max<kTeam, true>(lane_max(std::true_type{}), mask);
  const SegScale sc = seg_scale(amax, p.o_clip, 127.0f, mask, [&] { return lane_max(std::false_type{}); });
  if (first) store(16 * t, v, amax, sc.r);
  for (int c0 = 16 * t + 128; c0 < p.O; c0 += 128) {
    float u[16];
    load(c0, u);
    store(c0, u, amax, sc.r);
  }
  if (t == 0) p.oscale[i] = sc.h;
}

// Phase 1's store of channels j..j+7 (h: their fp16 values, f: fp32, for S = float) to the staged row: at
// their Atom places pos (8 entries of the staging table; one shared-memory store each: the reorder) or,
// without an Atom output, in order.
template <typename S>
__device__ __forceinline__ void stage8(const Params& p, S* srow, int j, const uint4& pos, const uint4& h, const float* f) {
  const __half* hv = reinterpret_cast<const __half*>(&h);
  if (p.stage) {
    const uint16_t* at = reinterpret_cast<const uint16_t*>(&pos);
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      if constexpr (sizeof(S) == 2) srow[at[e]] = hv[e];
      else srow[at[e]] = f[e];
    }
  } else if constexpr (sizeof(S) == 2) {
    *reinterpret_cast<uint4*>(srow + j) = h;
  } else {
    *reinterpret_cast<float4*>(srow + j) = make_float4(f[0], f[1], f[2], f[3]);
    *reinterpret_cast<float4*>(srow + j + 4) = make_float4(f[4], f[5], f[6], f[7]);
  }
}
__device__ __forceinline__ uint4 stage_pos8(const Params& p, int j) {
  return p.stage ? __ldg(reinterpret_cast<const uint4*>(p.stage + j)) : make_uint4(0, 0, 0, 0);
}

// Blocks per SM for ptxas's register budget. The kernel is latency-bound (ncu, results.md §9b/§10b: ~1.4
// eligible warps per scheduler at 4 blocks), so more resident rows help: 5 (48 registers) for the fp16-staged
// copy and SiLU (o_proj and down_proj inputs: 7-10% faster at M = 4096 than 4); 4 (64) where 48 spills (the
// fp16-staged RMSNorm, the bf16 copy: 24-96 bytes); 2 for the fp32-staged kernels (3, at 80 registers, was
// no faster at M = 4096 and 5% slower at M = 256, K = 11008).
template <int OP, typename T, typename S>
constexpr int kMinBlocks = sizeof(S) == 4 ? 2 : OP == kNorm || (OP == kCopy && !std::is_same_v<T, __half>) ? 4 : 5;

template <int OP, typename T, typename S>
__device__ __forceinline__ void fused_row(const Params& p, const int64_t i, S* srow, double* red_d, float* red_f) {
  const int64_t r = p.rows ? p.rows[i] : i;
  const T* xr = static_cast<const T*>(p.x) + r * p.ld;
  const int64_t K = p.K;

  // ---- phase 1: the op, staged in shared memory as S ----
  // Vector path: rounds of kVecs 8-value vectors per thread, all loaded before any is used (one at a time
  // left the DRAM latency exposed); RMSNorm keeps a one-round row in registers between its two passes.
  constexpr int kVecs = OP == kCopy && sizeof(T) == 2 ? 4 : OP == kSilu ? 1 : 2;
  constexpr int kRound = kThreads * 8 * kVecs;
  const int Ki = int(K), tid = int(threadIdx.x);
  __half* f16 = p.f16 && blockIdx.y == 0 ? p.f16 + i * K : nullptr;
  float rstd = 0.0f;
  if (p.vec) {
    constexpr bool kPlainCopy = OP == kCopy && std::is_same_v<T, __half> && sizeof(S) == 2;
    if constexpr (kPlainCopy) {  // fp16 in, fp16 staged: a plain copy, no conversions
      for (int r0 = 0; r0 < Ki; r0 += kRound) {
        uint4 raw[kVecs], pos[kVecs];
#pragma unroll
        for (int q = 0; q < kVecs; ++q) {
          const int j = r0 + (q * kThreads + tid) * 8;
          if (j >= Ki) continue;
          raw[q] = __ldg(reinterpret_cast<const uint4*>(xr + j));
          pos[q] = stage_pos8(p, j);
        }
#pragma unroll
        for (int q = 0; q < kVecs; ++q) {
          const int j = r0 + (q * kThreads + tid) * 8;
          if (j >= Ki) continue;
          stage8(p, srow, j, pos[q], raw[q], nullptr);
          if (f16) *reinterpret_cast<uint4*>(f16 + j) = raw[q];
        }
      }
    } else {
      float v[kVecs][8], u[kVecs][8];
      uint4 pos[kVecs];
      auto load_round = [&](int r0) {
#pragma unroll
        for (int q = 0; q < kVecs; ++q) {
          const int j = r0 + (q * kThreads + tid) * 8;
          if (j >= Ki) continue;
          load8(xr + j, v[q]);
          pos[q] = stage_pos8(p, j);
          if constexpr (OP == kSilu) load8(xr + K + j, u[q]);
        }
      };
      auto stage_round = [&](int r0) {
#pragma unroll
        for (int q = 0; q < kVecs; ++q) {
          const int j = r0 + (q * kThreads + tid) * 8;
          if (j >= Ki) continue;
          float wv[8] = {};  // the norm weights, 8 at a time when aligned
          if constexpr (OP == kNorm) {
            if (p.w_vec) {
              load8(p.w + j, wv);
            } else {
#pragma unroll
              for (int e = 0; e < 8; ++e) wv[e] = __ldg(p.w + j + e);
            }
          }
          float f[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) f[e] = op_value<OP>(v[q][e], OP == kSilu ? u[q][e] : 0.0f, wv[e], rstd);
          uint4 h;  // fp16 pairs: one packed conversion per two values
          uint32_t* hw = reinterpret_cast<uint32_t*>(&h);
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const __half2 pair = __floats2half2_rn(f[2 * e], f[2 * e + 1]);
            hw[e] = *reinterpret_cast<const uint32_t*>(&pair);
          }
          stage8(p, srow, j, pos[q], h, f);
          if (f16) *reinterpret_cast<uint4*>(f16 + j) = h;
        }
      };
      auto squares = [&](int r0) {
        double ss = 0.0;  // squares of fp32 values are exact in double, as in cpu::rmsnorm
#pragma unroll
        for (int q = 0; q < kVecs; ++q) {
          if (r0 + (q * kThreads + tid) * 8 >= Ki) continue;
#pragma unroll
          for (int e = 0; e < 8; ++e) ss += double(v[q][e]) * double(v[q][e]);
        }
        return ss;
      };
      if constexpr (OP == kNorm) {
        double ss = 0.0;
        for (int r0 = 0; r0 < Ki; r0 += kRound) {
          load_round(r0);
          ss += squares(r0);
        }
        ss = block_sum(ss, red_d);
        rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(float(ss / double(K)), p.eps)));
        if (Ki <= kRound) {  // the row is still in registers
          stage_round(0);
        } else {
          for (int r0 = 0; r0 < Ki; r0 += kRound) {
            load_round(r0);
            stage_round(r0);
          }
        }
      } else {
        for (int r0 = 0; r0 < Ki; r0 += kRound) {
          load_round(r0);
          stage_round(r0);
        }
      }
    }
  } else {
    if constexpr (OP == kNorm) {
      double ss = 0.0;
      for (int64_t j = threadIdx.x; j < K; j += kThreads) ss += double(to_f(xr[j])) * double(to_f(xr[j]));
      ss = block_sum(ss, red_d);
      rstd = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(float(ss / double(K)), p.eps)));
    }
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float u = OP == kSilu ? to_f(xr[K + j]) : 0.0f;
      const float f = op_value<OP>(to_f(xr[j]), u, OP == kNorm ? __ldg(p.w + j) : 0.0f, rstd);
      const __half h = __float2half_rn(f);
      const int64_t at = p.stage ? int64_t(p.stage[j]) : j;
      if constexpr (sizeof(S) == 2) srow[at] = h;
      else srow[at] = f;
      if (f16) f16[j] = h;
    }
  }
  if (p.stage && p.kn % 128 != 0)  // the ragged last group's padding reads as 0
    for (int w = p.kn - (p.G - 1) * 128 + int(threadIdx.x); w < 128; w += kThreads)
      srow[(p.G - 1) * 128 + atom_int4_stage_slot(w)] = S(0.0f);
  __syncthreads();

  // ---- phase 2a: W8A8, per-token INT8 of x/smooth (one block per row then) ----
  if (p.i8) {
    float amax = 0.0f;
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float v = to_f(srow[p.stage ? int64_t(p.stage[j]) : j]);
      amax = fmaxf(amax, fabsf(p.smooth ? __fdiv_rn(v, __ldg(p.smooth + j)) : v));
    }
    amax = block_max(amax, red_f);
    __half hs;
    const float s = sym_scale_fp16(amax, 1.0f, 127.0f, hs);
    int8_t* q = p.i8 + i * K;
    for (int64_t j = threadIdx.x; j < K; j += kThreads) {
      const float v = to_f(srow[p.stage ? int64_t(p.stage[j]) : j]);
      q[j] = int8_t(sym_quant(p.smooth ? __fdiv_rn(v, __ldg(p.smooth + j)) : v, s, -127.0f, 127.0f));
    }
    if (threadIdx.x == 0) p.i8_scale[i] = s;
  }

  // ---- phase 2b: Atom, one segment per team of 8 lanes ----
  if (p.q4) {
    const int team = threadIdx.x / kTeam, t = threadIdx.x % kTeam;
    const unsigned mask = 0xFFu << (kTeam * ((threadIdx.x % 32) / kTeam));
    const int seg_end = min(atom_segments(p), int(blockIdx.y + 1) * p.seg_chunk);
    for (int seg = int(blockIdx.y) * p.seg_chunk + team; seg < seg_end; seg += kTeams) {
      if (seg < p.G) quant_int4_group(p, i, srow, seg, t, mask);
      else quant_int8_tail(p, i, srow, t, mask);
    }
  }
}

template <int OP, typename T, typename S>
__global__ void __launch_bounds__(kThreads, (kMinBlocks<OP, T, S>)) fused_act_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ double red_d[kWarps];
  __shared__ float red_f[kWarps];
  fused_row<OP, T, S>(p, blockIdx.x, reinterpret_cast<S*>(smem_raw), red_d, red_f);
}

template <int OP, typename T, typename S>
void launch_staged(const Params& p, cudaStream_t s) {
  allow_dynamic_smem(reinterpret_cast<const void*>(fused_act_kernel<OP, T, S>), size_t(kMaxK + 256) * sizeof(S));
  const size_t smem = size_t((p.staged_len + 7) / 8 * 8) * sizeof(S);
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
  p.staged_len = p.K;
  p.i8 = out.i8;
  p.i8_scale = out.i8_scale;
  p.smooth = out.smooth;
  if (out.atom) {
    const GpuAtomLayout& L = out.L;
    ATOM_CUDA_REQUIRE(out.stage && L.k == p.K, "fused activation kernel: Atom layout/staging table do not match K");
    ATOM_CUDA_REQUIRE(reinterpret_cast<uintptr_t>(out.stage) % 16 == 0,
                      "fused activation kernel: the staging table must be 16-byte aligned (it is read 8 entries at a time)");
    GpuAtomActs& a = *out.atom;
    ATOM_CUDA_REQUIRE(int64_t(a.scale.size()) >= p.m * L.n_groups && int64_t(a.q4.size()) >= p.m * L.q4_row_bytes() &&
                          int64_t(a.q8.size()) >= p.m * L.n_outlier && (L.n_outlier == 0 || int64_t(a.oscale.size()) >= p.m),
                      "fused activation kernel: Atom activation buffers are too small for m rows");
    a.m = p.m;
    p.q4 = a.q4.data();
    p.scale = reinterpret_cast<__half*>(a.scale.data());
    p.q8 = a.q8.data();
    p.oscale = reinterpret_cast<__half*>(a.oscale.data());
    p.stage = out.stage;
    p.staged_len = atom_staged_len(L);
    p.G = int(L.n_groups);
    p.kn = int(L.k_normal);
    p.O = int(L.n_outlier);
    p.a_clip = out.a_clip;
    p.o_clip = out.a_outlier_clip;
  }
  if (p.m == 0) return;
  // Rows too few for the SMs: split the Atom segments over blocks, at least kTeams per block (a block's
  // teams take 32 segments in one pass, and every chunk redoes phase 1), so that about two blocks per SM
  // run (never with the W8A8 output, which needs the whole row in one block). Written after the device time
  // ran out (results.md §8c): it was at least kWarps per block, which ran M = 256, K = 4096 as 2 half-idle blocks per row.
  p.seg_chunk = 1 << 30;
  if (out.atom && !out.i8) {
    static const int sms = device_props().sm_count;
    const int64_t segs = atom_segments(p);
    const int64_t want = std::min<int64_t>((segs + kTeams - 1) / kTeams, (2 * sms + p.m - 1) / p.m);
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

std::vector<uint16_t> atom_stage_table(const std::vector<int32_t>& perm, const GpuAtomLayout& L) {
  const int64_t K = L.k;
  ATOM_CUDA_REQUIRE(int64_t(perm.size()) == K && K <= kMaxK, "atom_stage_table: perm has the wrong length");
  std::vector<uint16_t> stage(static_cast<size_t>(K));
  std::vector<char> seen(static_cast<size_t>(K), 0);
  for (int64_t k = 0; k < K; ++k) {
    const int32_t j = perm[size_t(k)];
    ATOM_CUDA_REQUIRE(j >= 0 && j < K && !seen[size_t(j)], "atom_stage_table: perm is not a permutation");
    seen[size_t(j)] = 1;
    const int64_t e = k - L.k_normal;
    const int64_t at = k < L.k_normal ? k / 128 * 128 + atom_int4_stage_slot(int(k % 128))
                                      : L.n_groups * 128 + e / 128 * 128 + atom_tail_stage_slot(int(e % 128));
    stage[size_t(j)] = uint16_t(at);
  }
  return stage;
}

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
void atom_quantize_acts_fp16(const uint16_t* x, int64_t m, const uint16_t* stage, const GpuAtomLayout& L, float a_clip,
                             float a_outlier_clip, GpuAtomActs& acts, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(acts.m == m, "atom_quantize_acts_fp16: acts not resized for m rows");
  FusedOut o;
  o.atom = &acts;
  o.stage = stage;
  o.L = L;
  o.a_clip = a_clip;
  o.a_outlier_clip = a_outlier_clip;
  reorder_quant(x, ActDtype::F16, m, L.k, o, s);
}

}  // namespace atom::cuda
