#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/elementwise.h"

namespace atom::cuda {
namespace {

unsigned grid_for(int64_t n, int per_thread = 1) {
  return unsigned(std::clamp<int64_t>((n / per_thread + 255) / 256, 1, 132 * 16));
}

__global__ void embed_kernel(const __half* __restrict__ embed, const int32_t* __restrict__ tokens, int64_t H,
                             float* __restrict__ x) {
  const int64_t t = blockIdx.x;
  const __half* row = embed + int64_t(tokens[t]) * H;
  for (int64_t j = threadIdx.x; j < H; j += blockDim.x) x[t * H + j] = __half2float(row[j]);
}

__global__ void rope_split_kernel(const __half* __restrict__ qkv, const int32_t* __restrict__ pos,
                                  const float* __restrict__ inv_freq, int nh, int nkv, int hd,
                                  __half* __restrict__ q, __half* __restrict__ k, __half* __restrict__ v) {
  const int64_t t = blockIdx.x;
  const int half = hd / 2, rot_heads = nh + nkv;
  const int64_t row = int64_t(nh + 2 * nkv) * hd;
  const __half* src = qkv + t * row;
  const float p = float(pos[t]);
  // rotated pairs (head h, i) and (head h, i + hd/2) of q and k
  for (int idx = threadIdx.x; idx < rot_heads * half; idx += blockDim.x) {
    const int h = idx / half, i = idx % half;
    float sn, cs;
    sincosf(__fmul_rn(p, inv_freq[i]), &sn, &cs);
    const float a = __half2float(src[h * hd + i]), b = __half2float(src[h * hd + i + half]);
    const float ra = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn)), rb = __fadd_rn(__fmul_rn(b, cs), __fmul_rn(a, sn));
    __half* dst = h < nh ? q + t * int64_t(nh) * hd + h * hd : k + t * int64_t(nkv) * hd + (h - nh) * hd;
    dst[i] = __float2half_rn(ra);
    dst[i + half] = __float2half_rn(rb);
  }
  for (int j = threadIdx.x; j < nkv * hd; j += blockDim.x) v[t * int64_t(nkv) * hd + j] = src[rot_heads * hd + j];
}

__global__ void add_kernel(float* __restrict__ x, const float* __restrict__ y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = __fadd_rn(x[i], y[i]);
}

__device__ __forceinline__ uint32_t hash32(uint64_t i, uint64_t seed) {
  uint64_t x = i * 0x9E3779B97F4A7C15ull ^ (seed + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
  x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 27; x *= 0x94D049BB133111EBull; x ^= x >> 31;
  return uint32_t(x);
}
__device__ __forceinline__ float unit(uint64_t i, uint64_t seed) { return (hash32(i, seed) >> 8) * (1.0f / 16777216.0f); }

__global__ void fill_f16_kernel(__half* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    __half h = __float2half_rn(lo + (hi - lo) * unit(uint64_t(i), seed));
    if (__half2float(h) == 0.0f) h = __float2half_rn(hi > 0.0f ? 1e-3f : -1e-3f);  // non-zero data
    p[i] = h;
  }
}
__global__ void fill_f32_kernel(float* p, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * unit(uint64_t(i), seed);
}
__global__ void fill_bytes_kernel(uint8_t* p, int64_t n, uint64_t seed, uint8_t mask, bool no_min) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint8_t b = uint8_t(hash32(uint64_t(i), seed)) & mask;
    p[i] = (no_min && b == 0x80) ? uint8_t(0x81) : b;
  }
}

}  // namespace

void embed_rows(const uint16_t* embed, const int32_t* tokens, int64_t T, int64_t H, float* x, cudaStream_t s) {
  if (T == 0) return;
  embed_kernel<<<unsigned(T), 256, 0, s>>>(reinterpret_cast<const __half*>(embed), tokens, H, x);
  ATOM_CUDA_CHECK_LAUNCH();
}

void rope_split(const uint16_t* qkv, const int32_t* pos, const float* inv_freq, int64_t T, int nh, int nkv, int hd,
                uint16_t* q, uint16_t* k, uint16_t* v, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(hd % 2 == 0, "rope_split: odd head_dim");
  if (T == 0) return;
  rope_split_kernel<<<unsigned(T), 256, 0, s>>>(reinterpret_cast<const __half*>(qkv), pos, inv_freq, nh, nkv, hd,
                                                reinterpret_cast<__half*>(q), reinterpret_cast<__half*>(k),
                                                reinterpret_cast<__half*>(v));
  ATOM_CUDA_CHECK_LAUNCH();
}

void add_f32(float* x, const float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  add_kernel<<<grid_for(n), 256, 0, s>>>(x, y, n);
  ATOM_CUDA_CHECK_LAUNCH();
}

void fill_uniform_f16(uint16_t* p, int64_t n, uint64_t seed, float lo, float hi, cudaStream_t s) {
  if (n == 0) return;
  fill_f16_kernel<<<grid_for(n), 256, 0, s>>>(reinterpret_cast<__half*>(p), n, seed, lo, hi);
  ATOM_CUDA_CHECK_LAUNCH();
}
void fill_uniform_f32(float* p, int64_t n, uint64_t seed, float lo, float hi, cudaStream_t s) {
  if (n == 0) return;
  fill_f32_kernel<<<grid_for(n), 256, 0, s>>>(p, n, seed, lo, hi);
  ATOM_CUDA_CHECK_LAUNCH();
}
void fill_random_bytes(void* p, int64_t n, uint64_t seed, uint8_t mask, bool no_int8_min, cudaStream_t s) {
  if (n == 0) return;
  fill_bytes_kernel<<<grid_for(n), 256, 0, s>>>(static_cast<uint8_t*>(p), n, seed, mask, no_int8_min);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace atom::cuda
