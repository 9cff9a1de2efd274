// W4A4 + INT8-outlier GEMM for decode, streaming: configs 15 (8 tokens per tile), 16 (16) and 18 (32).
// Layouts: atom_gemm.h. The decode GEMM is a read of the weights, and the cp.async kernels (configs 0, 12)
// reach 14-53% of HBM because each CTA is a chain of round trips: stage barrier, split-K partial store,
// fence, counter (results.md §3f-3g). Here nothing waits on shared memory until the very end:
//   - a CTA owns 16 weight rows and the whole K range (no split-K across CTAs when the rows fill the GPU);
//     its warps take the groups in turn, warp w groups w, w + kWarps, ...;
//   - lane (g, c) loads its 16 bytes of the group (chunk c) of weight rows g and g + 8 straight into
//     registers, kDepth groups ahead, with streaming (evict-first) loads, and the same chunk of its token's
//     activation row through L1 (activations are tiny and read by every CTA);
//   - word t of chunk c becomes k-slots 4c.. / 16+4c.. of mma m16n8k32 number t, on both operands: a
//     permutation of k inside the group, which the dot product does not see (the packed "MMA order" of
//     atom_gemm.h is not needed here, only that weights and activations share it);
//   - per group facc += fp32(acc) * s_w/256 * s_a (both operands unpacked x16); the INT8 outlier tail is
//     the last warp's extra step; the warps' partials meet once in shared memory.
#include <cuda_fp16.h>

#include "atom/backend/cuda/atom_gemm_common.cuh"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda::gemm_detail {
namespace {

constexpr int kBN = 16;     // weight rows per CTA (the MMA's M)
constexpr int kWarps = 8;   // warps per CTA, splitting the CTA's groups

// NT token tiles of 8 (tokens m0 .. m0 + 8 NT - 1); kDepth groups in flight per warp.
template <int NT, int kDepth>
__global__ void __launch_bounds__(kWarps * 32, 2) atom_gemm_stream_kernel(const Params p) {
  constexpr int BM = 8 * NT;
  __shared__ float red[kWarps][BM][kBN];  // the warps' partial outputs, [token][weight row]
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
  const int n0 = blockIdx.x * kBN, m0 = blockIdx.y * BM;
  const int g_begin = blockIdx.z * p.groups_per_split, g_end = min(p.G, g_begin + p.groups_per_split);
  const int64_t rb = int64_t(p.G) * 64;  // packed bytes per row
  const int Gt = p.G + (p.O > 0 ? 1 : 0);
  // Rows past N read row N - 1 (a valid address) and are never stored.
  const int r0 = min(n0 + g, p.N - 1), r1 = min(n0 + g + 8, p.N - 1);
  const uint8_t* w0 = p.w4 + r0 * rb + 16 * c;
  const uint8_t* w1 = p.w4 + r1 * rb + 16 * c;
  const __half* sw0 = p.sw + int64_t(r0) * p.G;
  const __half* sw1 = p.sw + int64_t(r1) * p.G;
  // B column g of tile t is token m0 + 8t + g (loads); C columns 2c, 2c+1 are tokens m0 + 8t + 2c (+1).
  const uint8_t* arow[NT];
  bool aok[NT];
  const __half* sarow[NT][2];
  bool sok[NT][2];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    const int tok = m0 + 8 * t + g;
    aok[t] = tok < p.M;
    arow[t] = p.a4 + int64_t(aok[t] ? tok : 0) * rb + 16 * c;
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int ct = m0 + 8 * t + 2 * c + e;
      sok[t][e] = ct < p.M;
      sarow[t][e] = p.sa + int64_t(sok[t][e] ? ct : 0) * p.G;
    }
  }
  float facc[NT][4];
#pragma unroll
  for (int t = 0; t < NT; ++t) facc[t][0] = facc[t][1] = facc[t][2] = facc[t][3] = 0.0f;

  // ---- the groups: registers of kDepth groups in flight ----
  const int n_all = g_end - g_begin;
  const int n_mine = warp < n_all ? (n_all - warp + kWarps - 1) / kWarps : 0;
  uint4 wq[kDepth][2], aq[kDepth][NT];
  __half hsw[kDepth][2], hsa[kDepth][NT][2];
  auto load = [&](int s, int j) {
    if (j >= n_mine) return;
    const int gi = g_begin + warp + j * kWarps;
    wq[s][0] = __ldcs(reinterpret_cast<const uint4*>(w0 + int64_t(gi) * 64));
    wq[s][1] = __ldcs(reinterpret_cast<const uint4*>(w1 + int64_t(gi) * 64));
    hsw[s][0] = sw0[gi];
    hsw[s][1] = sw1[gi];
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      aq[s][t] = aok[t] ? __ldg(reinterpret_cast<const uint4*>(arow[t] + int64_t(gi) * 64)) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int e = 0; e < 2; ++e) hsa[s][t][e] = sok[t][e] ? sarow[t][e][gi] : __ushort_as_half(0);
    }
  };
#pragma unroll
  for (int s = 0; s < kDepth; ++s) load(s, s);
  for (int j0 = 0; j0 < n_mine; j0 += kDepth) {
#pragma unroll
    for (int s = 0; s < kDepth; ++s) {
      const int j = j0 + s;
      if (j >= n_mine) break;
      const int gi = g_begin + warp + j * kWarps;
      uint32_t a[4][4];  // k-step t: a0 (row g), a1 (row g+8), a2, a3: the low / high nibbles of word t
      const uint32_t x0[4] = {wq[s][0].x, wq[s][0].y, wq[s][0].z, wq[s][0].w};
      const uint32_t x1[4] = {wq[s][1].x, wq[s][1].y, wq[s][1].z, wq[s][1].w};
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        ptx::unpack_int4x8_x16_split(x0[kk], a[kk][0], a[kk][2]);
        ptx::unpack_int4x8_x16_split(x1[kk], a[kk][1], a[kk][3]);
      }
      const float s_w[2] = {__half2float(hsw[s][0]) * (1.0f / 256.0f), __half2float(hsw[s][1]) * (1.0f / 256.0f)};
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        int32_t acc[4] = {0, 0, 0, 0};
        const uint32_t y[4] = {aq[s][t].x, aq[s][t].y, aq[s][t].z, aq[s][t].w};
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          uint32_t b0, b1;
          ptx::unpack_int4x8_x16_split(y[kk], b0, b1);
          ptx::mma_s8_16832(acc, a[kk][0], a[kk][1], a[kk][2], a[kk][3], b0, b1);
        }
        // acc[e]: weight row g + 8 (e / 2), token m0 + 8t + 2c + e % 2; |acc| <= 2^21: exact in fp32
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          facc[t][e] = fmaf(float(acc[e]) * s_w[e / 2], __half2float(hsa[s][t][e % 2]), facc[t][e]);
          if (p.psums) {
            const int r = n0 + g + 8 * (e / 2), tok = m0 + 8 * t + 2 * c + e % 2;
            if (r < p.N && tok < p.M) p.psums[(int64_t(tok) * p.N + r) * Gt + gi] = acc[e] / 256;  // (exact)
          }
        }
      }
      load(s, j + kDepth);
    }
  }

  // ---- the INT8 outlier tail (split 0), on the last warp: 64 channels per pass, 2 k-steps of 32 ----
  if (blockIdx.z == 0 && p.O > 0 && warp == kWarps - 1) {
    const int8_t* o0 = p.w8 + int64_t(r0) * p.O + 16 * c;
    const int8_t* o1 = p.w8 + int64_t(r1) * p.O + 16 * c;
    int32_t acc[NT][4] = {};
    for (int kb = 0; kb < p.O; kb += 64) {
      const bool ok = kb + 16 * c < p.O;  // O % 16 == 0: a 16-byte chunk is wholly inside or outside
      const uint4 u0 = ok ? __ldg(reinterpret_cast<const uint4*>(o0 + kb)) : make_uint4(0, 0, 0, 0);
      const uint4 u1 = ok ? __ldg(reinterpret_cast<const uint4*>(o1 + kb)) : make_uint4(0, 0, 0, 0);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        const int tok = m0 + 8 * t + g;
        const uint4 v = ok && tok < p.M ? __ldg(reinterpret_cast<const uint4*>(p.a8 + int64_t(tok) * p.O + kb + 16 * c))
                                        : make_uint4(0, 0, 0, 0);
        ptx::mma_s8_16832(acc[t], u0.x, u1.x, u0.y, u1.y, v.x, v.y);
        ptx::mma_s8_16832(acc[t], u0.z, u1.z, u0.w, u1.w, v.z, v.w);
      }
    }
    const float so[2] = {__half2float(p.swo[r0]), __half2float(p.swo[r1])};
#pragma unroll
    for (int t = 0; t < NT; ++t)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = n0 + g + 8 * (e / 2), tok = m0 + 8 * t + 2 * c + e % 2;
        const float sa = tok < p.M ? __half2float(p.sao[tok]) : 0.0f;
        facc[t][e] = fmaf(float(acc[t][e]) * so[e / 2], sa, facc[t][e]);
        if (p.psums && r < p.N && tok < p.M) p.psums[(int64_t(tok) * p.N + r) * Gt + p.G] = acc[t][e];
      }
  }

  // ---- the warps' partials, summed in warp order; one thread per output ----
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) red[warp][8 * t + 2 * c + e % 2][g + 8 * (e / 2)] = facc[t][e];
  __syncthreads();
  for (int i = threadIdx.x; i < BM * kBN; i += kWarps * 32) {
    const int tl = i / kBN, nl = i % kBN, tok = m0 + tl, n = n0 + nl;
    if (tok >= p.M || n >= p.N) continue;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += red[w][tl][nl];
    store_out_one(p, int64_t(tok) * p.N + n, v);
  }
}

}  // namespace

// ctas_per_sm 1: a split-K only when the rows leave SMs idle (the auto rule in launch_gemm); fp32 atomics.
// Both instances run 2 CTAs (16 warps) per SM: depth 4 at 8 tokens (104 registers), depth 3 at 16 tokens
// (held to 128 registers, 4 bytes of spill; ptxas, nvcc 13.0). At 140 registers the 16-token instance ran one
// CTA per SM and was slower than two 8-token tiles on 6 of 7 shapes (results.md §5b); 128 is not yet measured.
KernelLaunch stream_kernel(int token_tiles) {
  // 32 tokens (M = 17..32 and 64 in two rows of CTAs) read the weights once per 32 tokens, at depth 1 to fit
  // 128 registers (142 at depth 1 unbounded, 171 at depth 2; depth 2 spills 208 bytes at 128).
  if (token_tiles == 4) return {atom_gemm_stream_kernel<4, 1>, 32, kBN, kWarps * 32, 0, 1};
  if (token_tiles == 2) return {atom_gemm_stream_kernel<2, 3>, 16, kBN, kWarps * 32, 0, 1};
  return {atom_gemm_stream_kernel<1, 4>, 8, kBN, kWarps * 32, 0, 1};
}

}  // namespace atom::cuda::gemm_detail
