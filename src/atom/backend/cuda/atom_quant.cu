// Fused activation quantizer for the Atom linear: reorder-gather + INT4 group quantization (a_clip,
// fp16-rounded scales, ragged last group zero-padded) + INT8 outlier tail with a per-token scale,
// written in the GPU layout of atom_gemm.h. Bit-exact with atom::quant::atom_quantize_activations.
#include <cuda_fp16.h>

#include "atom/backend/cuda/atom_gemm.h"

namespace atom::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerBlock = 4;

// quantize.h's sym_scale: fp16(clip*amax/qmax), saturating at 65504, 0 for non-positive.
__device__ __forceinline__ float sym_scale_fp16(float amax, float clip, float qmax, __half& h) {
  const float s = (clip * amax) / qmax;  // IEEE fp32 (no fast-math in this target)
  if (!(s > 0.0f)) { h = __float2half_rn(0.0f); return 0.0f; }
  h = __float2half_rn(s);
  float r = __half2float(h);
  if (isinf(r)) { h = __float2half_rn(65504.0f); r = 65504.0f; }
  return r;
}

// quantize.h's sym_quant: clamp(rint(x/s), qmin, qmax) in float, NaN -> 0, s == 0 -> 0.
__device__ __forceinline__ int sym_quant(float x, float s, float qmin, float qmax) {
  if (s == 0.0f) return 0;
  float r = rintf(__fdiv_rn(x, s));
  if (isnan(r)) return 0;
  r = fmaxf(r, qmin);
  r = fminf(r, qmax);
  return __float2int_rn(r);
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__global__ void __launch_bounds__(kWarps * 32) quant_acts_kernel(
    const __half* __restrict__ x, int64_t m, int64_t K, const int32_t* __restrict__ perm, int G, int kn, int O,
    float a_clip, float o_clip, uint8_t* __restrict__ q4, __half* __restrict__ scale, int8_t* __restrict__ q8,
    __half* __restrict__ oscale) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t row0 = int64_t(blockIdx.x) * kRowsPerBlock;
  const int segs = G + (O > 0 ? 1 : 0);
  const int items = kRowsPerBlock * segs;
  for (int it = warp; it < items; it += kWarps) {
    const int seg = it % segs;  // consecutive warps take consecutive segments of one row
    const int64_t row = row0 + it / segs;
    if (row >= m) break;
    const __half* xr = x + row * K;
    if (seg < G) {
      // lane covers group elements 4*lane .. 4*lane+3
      float v[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int j = seg * 128 + 4 * lane + i;
        v[i] = j < kn ? __half2float(xr[__ldg(perm + j)]) : 0.0f;
      }
      float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
      amax = warp_max(amax);
      __half hs;
      const float s = sym_scale_fp16(amax, a_clip, 7.0f, hs);
      uint32_t packed = 0;
#pragma unroll
      for (int i = 0; i < 4; ++i) packed |= uint32_t(sym_quant(v[i], s, -8.0f, 7.0f) & 0xF) << (4 * i);
      // MMA order: chunk c = lane/8, word t = lane%4, half = (lane%8)/4
      const int off = (lane / 8) * 16 + (lane % 4) * 4 + ((lane % 8) / 4) * 2;
      *reinterpret_cast<uint16_t*>(q4 + row * int64_t(G) * 64 + seg * 64 + off) = uint16_t(packed);
      if (lane == 0) scale[row * G + seg] = hs;
    } else {
      // outlier tail: elements kn .. kn+O-1, one scale per row
      float amax = 0.0f;
      for (int e = lane; e < O; e += 32) amax = fmaxf(amax, fabsf(__half2float(xr[__ldg(perm + kn + e)])));
      amax = warp_max(amax);
      __half hs;
      const float s = sym_scale_fp16(amax, o_clip, 127.0f, hs);
      for (int e = lane; e < O; e += 32)
        q8[row * O + e] = int8_t(sym_quant(__half2float(xr[__ldg(perm + kn + e)]), s, -127.0f, 127.0f));
      if (lane == 0) oscale[row] = hs;
    }
  }
}

}  // namespace

void atom_quantize_acts_fp16(const uint16_t* x, int64_t m, const int32_t* perm, const GpuAtomLayout& L,
                             float a_clip, float a_outlier_clip, GpuAtomActs& acts, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(acts.m == m, "atom_quantize_acts_fp16: acts not resized for m rows");
  if (m == 0) return;
  const int64_t blocks = (m + kRowsPerBlock - 1) / kRowsPerBlock;
  quant_acts_kernel<<<unsigned(blocks), kWarps * 32, 0, s>>>(
      reinterpret_cast<const __half*>(x), m, L.k, perm, int(L.n_groups), int(L.k_normal), int(L.n_outlier), a_clip,
      a_outlier_clip, acts.q4.data(), reinterpret_cast<__half*>(acts.scale.data()), acts.q8.data(),
      reinterpret_cast<__half*>(acts.oscale.data()));
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace atom::cuda
