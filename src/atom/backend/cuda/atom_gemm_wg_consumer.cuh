// The consumer warpgroups' promotion and epilogue, shared by the warp-specialized W4A4 GEMMs
// (atom_gemm_ws.cu: cp.async ring; atom_gemm_tma.cu: TMA rings). Device-only header (nvcc).
// A consumer warpgroup owns 64 rows x 128 columns of the 128 x 128 tile as two 64-column halves of
// wgmma m64n64 accumulators: element d[4j + e] of half h is row arow + 8(e/2), column 64h + 8j + 2t + e%2,
// with arow = 64 * (consumer) + 16 * warp + lane / 4 and t = lane % 4.
// A stage's fp32 scales (written by the producer, store_col_scale): s_a[128], then the column scales in one of
// two layouts. kF2 = false: per column pair c, c+1 one float4 {s_w[c], s_w[c+1], -1.5 * 2^23 * s_w[c],
// -1.5 * 2^23 * s_w[c+1]} (the magic-number conversion's offset). kF2 = true: a float2 {s_w[c], s_w[c+1]} per
// pair, a thread's eight pairs of a half contiguous, the offsets computed (one FMUL per column): half the
// shared-memory bytes per thread, whose 128-byte-per-clock return path the wgmma operand reads share.
#pragma once
#include <cstdint>

#include "atom/backend/cuda/atom_gemm_common.cuh"

namespace atom::cuda::gemm_detail {

constexpr int kWgTileM = 128;  // rows of the tile (the s_a block of the scales)
constexpr int kWgPre = 6;      // column quads whose scales are loaded ahead (all eight spilled in config 9)

// One half's scales, loaded before the wgmma wait that precedes its promotion (loaded inside it, the first
// FFMAs waited for shared memory: the second-largest stall of the 2026-12-01 profile).
template <bool kF2 = false>
struct HalfScales {
  const float* sc;
  float sa0, sa1;
  float4 w[kF2 ? 4 : kWgPre];  // kF2: the eight {s_w[c], s_w[c + 1]} pairs, two per float4
};
// Column c's scale s_w into the stage's scales `sc` (the producer's side of the layouts above).
template <bool kF2 = false>
__device__ __forceinline__ void store_col_scale(float* sc, int c, float sw) {
  if constexpr (kF2) {
    const int h = c / 64, j = (c % 64) / 8, t = (c % 8) / 2;
    sc[kWgTileM + ((h * 4 + t) * 8 + j) * 2 + (c & 1)] = sw;
  } else {
    sc[kWgTileM + (c >> 1) * 4 + (c & 1)] = sw;
    sc[kWgTileM + (c >> 1) * 4 + 2 + (c & 1)] = -kMagic * sw;  // exact: 3 * 2^22 times an fp16 value
  }
}
template <bool kF2 = false>
__device__ __forceinline__ void load_half_scales(const float* sc, int arow, int t, int h, HalfScales<kF2>& hs) {
  hs.sc = sc;
  hs.sa0 = sc[arow], hs.sa1 = sc[arow + 8];
  if constexpr (kF2) {
#pragma unroll
    for (int j = 0; j < 4; ++j) hs.w[j] = *reinterpret_cast<const float4*>(sc + kWgTileM + (h * 4 + t) * 16 + 4 * j);
  } else {
#pragma unroll
    for (int j = 0; j < kWgPre; ++j) hs.w[j] = *reinterpret_cast<const float4*>(sc + kWgTileM + (32 * h + 4 * j + t) * 4);
  }
}

// facc(half h) += fp32(acc * s_w) * s_a. kExact (the outlier step): an exact int -> float conversion (its
// sums may exceed the magic trick's 2^22); else the magic-number one (normal groups, |sum| <= 2^21).
// kPsums: also store the int32 partial sums of group gidx (tests; normal groups hold 256x their sum).
template <bool kExact, bool kPsums, bool kF2 = false>
__device__ __forceinline__ void promote_half(float (&facc)[64], const int32_t (&acc)[32], int h,
                                             const HalfScales<kF2>& hs, const Params& p, int m0, int n0, int arow,
                                             int t, int gidx, int Gt) {
  const float sa0 = hs.sa0, sa1 = hs.sa1;
  // psums offsets in 32 bits (atom_gemm checks M * N * Gt < 2^31): with 64-bit per-element addresses a
  // tile-loop version of the TMA kernel's psums instance spilled 1.4 KB (results.md §13)
  const int r0 = m0 + arow, c0 = n0 + 64 * h + 2 * t;
  const int ps_base = kPsums ? (r0 * p.N + c0) * Gt + gidx : 0, ps_row8 = kPsums ? 8 * p.N * Gt : 0;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    // {s_w[c], s_w[c + 1]} and the offsets {-M s_w[c], -M s_w[c + 1]} of this j's column pair
    float2 sw2, off2;
    if constexpr (kF2) {
      const float4 q = hs.w[j / 2];
      sw2 = (j % 2) ? make_float2(q.z, q.w) : make_float2(q.x, q.y);
      if (!kExact) off2 = make_float2(-kMagic * sw2.x, -kMagic * sw2.y);
    } else {
      const float4 w4 = j < kWgPre ? hs.w[j < kWgPre ? j : 0]
                                   : *reinterpret_cast<const float4*>(hs.sc + kWgTileM + (32 * h + 4 * j + t) * 4);
      sw2 = make_float2(w4.x, w4.y), off2 = make_float2(w4.z, w4.w);
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int32_t a = acc[4 * j + e];
      const float swe = (e % 2) ? sw2.y : sw2.x;
      const float u = kExact ? float(a) * swe : fmaf(__int_as_float(a + kMagicBits), swe, (e % 2) ? off2.y : off2.x);
      float& f = facc[32 * h + 4 * j + e];
      f = fmaf(u, (e / 2) ? sa1 : sa0, f);
      if (kPsums) {
        const int r = r0 + 8 * (e / 2), c = c0 + 8 * j + (e % 2);
        if (r < p.M && c < p.N) p.psums[ps_base + (e / 2) * ps_row8 + (8 * j + e % 2) * Gt] = kExact ? a : a / 256;  // (exact)
      }
    }
  }
}

// f(o, c, v0, v1) for each of this thread's output pairs (row r < M, columns c, c + 1 at offset o).
template <class F>
__device__ __forceinline__ void for_each_out_pair(const Params& p, const float (&facc)[64], int m0, int n0, int arow,
                                                  int t, F&& f) {
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e2 = 0; e2 < 2; ++e2) {
        const int r = m0 + arow + 8 * e2, c = n0 + 64 * h + 8 * j + 2 * t;
        if (r < p.M) f(int64_t(r) * p.N + c, c, facc[32 * h + 4 * j + 2 * e2], facc[32 * h + 4 * j + 2 * e2 + 1]);
      }
}

}  // namespace atom::cuda::gemm_detail
