#include <cfloat>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "atom/backend/cuda/gpu_sampling.h"

namespace atom::cuda {
namespace {

constexpr int kThreads = 512;        // argmax
constexpr int kSampleThreads = 1024; // draws: one block per row

// (value, index) with the larger value winning, the smaller index on ties.
__device__ __forceinline__ void better(float& v, int& i, float v2, int i2) {
  if (v2 > v || (v2 == v && i2 < i)) {
    v = v2;
    i = i2;
  }
}

// Block-wide argmax of row[0, vocab) (first index on ties; NaN never wins); every thread gets the index
// (vocab when every value is NaN) and the maximum.
template <int NT>
__device__ int block_argmax(const float* row, int64_t vocab, float& vmax) {
  float v = -FLT_MAX;
  int i = int(vocab);
  for (int64_t j = threadIdx.x; j < vocab; j += NT) {
    const float x = row[j];
    if (x > v || (i == int(vocab) && x == v)) {  // strict '>' keeps the first index within a thread
      v = x;
      i = int(j);
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  __shared__ float sv[NT / 32];
  __shared__ int si[NT / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // the arrays may still be read by a previous call
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = i;
  }
  __syncthreads();
  v = lane < NT / 32 ? sv[lane] : -FLT_MAX;
  i = lane < NT / 32 ? si[lane] : int(vocab);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) better(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
  vmax = v;
  return i;
}

__global__ void __launch_bounds__(kThreads) argmax_kernel(const float* __restrict__ logits, int64_t vocab,
                                                          int32_t* __restrict__ ids) {
  float vmax;
  const int i = block_argmax<kThreads>(logits + int64_t(blockIdx.x) * vocab, vocab, vmax);
  if (threadIdx.x == 0) ids[blockIdx.x] = i < int(vocab) ? i : 0;  // an all-NaN row: token 0
}

// Order-preserving map of a float to uint32 (NaN is mapped to 0, below every number).
__device__ __forceinline__ uint32_t ordered(float f) {
  if (f != f) return 0u;
  const uint32_t b = __float_as_uint(f);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

__host__ __device__ inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
__host__ __device__ inline double uniform01(uint64_t seed, uint64_t counter) {
  return double(splitmix64(splitmix64(seed) ^ counter) >> 11) * 0x1.0p-53;
}

// Softmax weight of z (0 for NaN, which never wins).
__device__ __forceinline__ double weight(float z, float zmax) { return z == z ? double(__expf(z - zmax)) : 0.0; }

using Reduce = cub::BlockReduce<double, kSampleThreads>;
using Scan = cub::BlockScan<double, kSampleThreads>;

struct SampleSmem {
  union {
    Reduce::TempStorage reduce;
    Scan::TempStorage scan;
  };
  double total;
  int found;
};

// Sum over the row of f(key_j, p_j), broadcast to every thread.
template <typename F>
__device__ double block_sum(const float* row, int64_t vocab, float inv_t, float zmax, SampleSmem& sm, F f) {
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < vocab; j += kSampleThreads) {
    const float z = row[j] * inv_t;
    acc += f(ordered(z), weight(z, zmax));
  }
  __syncthreads();
  const double t = Reduce(sm.reduce).Sum(acc);
  if (threadIdx.x == 0) sm.total = t;
  __syncthreads();
  return sm.total;
}

// Largest key K with g(K) >= goal, for g non-increasing in K (a sum over keys >= K): bisection on bits.
template <typename G>
__device__ uint32_t bisect_threshold(double goal, G g) {
  uint32_t k = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t c = k | (1u << bit);
    if (g(c) >= goal) k = c;
  }
  return k;
}

__global__ void __launch_bounds__(kSampleThreads) sample_kernel(const float* __restrict__ logits, int64_t vocab,
                                                                const GpuRowSampling* __restrict__ params,
                                                                int32_t* __restrict__ ids) {
  __shared__ SampleSmem sm;
  const float* row = logits + int64_t(blockIdx.x) * vocab;
  const GpuRowSampling p = params[blockIdx.x];
  float vmax;
  const int amax = block_argmax<kSampleThreads>(row, vocab, vmax);
  if (!(p.temperature > 0.0f) || amax >= int(vocab)) {  // greedy, or nothing but NaN
    if (threadIdx.x == 0) ids[blockIdx.x] = amax < int(vocab) ? amax : 0;
    return;
  }
  // z = logit * (1/T) (the CPU divides; the products differ by at most an ulp), softmax weights exp(z - zmax).
  const float inv_t = 1.0f / p.temperature;
  const float zmax = vmax * inv_t;
  uint32_t thr = 0;  // kept: ordered(z) >= thr
  if (p.top_k > 0 && int64_t(p.top_k) < vocab) {
    thr = bisect_threshold(double(p.top_k), [&](uint32_t c) {
      return block_sum(row, vocab, inv_t, zmax, sm, [c](uint32_t key, double) { return key >= c ? 1.0 : 0.0; });
    });
  }
  const double kept = block_sum(row, vocab, inv_t, zmax, sm, [thr](uint32_t key, double w) { return key >= thr ? w : 0.0; });
  if (p.top_p < 1.0f) {
    const double goal = double(p.top_p) * kept;
    const uint32_t tp = bisect_threshold(goal, [&](uint32_t c) {
      const uint32_t t = c > thr ? c : thr;
      return block_sum(row, vocab, inv_t, zmax, sm, [t](uint32_t key, double w) { return key >= t ? w : 0.0; });
    });
    thr = tp > thr ? tp : thr;
  }
  // The draw: r in [0, mass) over the kept weights in index order; each thread takes a contiguous chunk.
  const double mass = block_sum(row, vocab, inv_t, zmax, sm, [thr](uint32_t key, double w) { return key >= thr ? w : 0.0; });
  const double r = uniform01(p.seed, p.counter) * mass;
  const int64_t chunk = (vocab + kSampleThreads - 1) / kSampleThreads;
  const int64_t j0 = int64_t(threadIdx.x) * chunk, j1 = j0 + chunk < vocab ? j0 + chunk : vocab;
  double local = 0.0;
  int last = -1;
  for (int64_t j = j0; j < j1; ++j) {
    const float z = row[j] * inv_t;
    if (z == z && ordered(z) >= thr) {
      local += weight(z, zmax);
      last = int(j);
    }
  }
  double before;
  if (threadIdx.x == 0) sm.found = -1;
  __syncthreads();
  Scan(sm.scan).ExclusiveSum(local, before);
  if (last >= 0 && r < before + local && r >= before) {  // r falls in this thread's chunk
    double acc = before;
    int pick = last;
    for (int64_t j = j0; j < j1; ++j) {
      const float z = row[j] * inv_t;
      if (!(z == z) || ordered(z) < thr) continue;
      acc += weight(z, zmax);
      if (r < acc) {
        pick = int(j);
        break;
      }
    }
    atomicMax(&sm.found, pick);  // at most one thread gets here but for rounding at a chunk edge
  }
  __syncthreads();
  // Rounding may put r at or past the last kept weight: take the last kept token (as the CPU does).
  if (sm.found < 0 && last >= 0) atomicMax(&sm.found, last);
  __syncthreads();
  if (threadIdx.x == 0) ids[blockIdx.x] = sm.found >= 0 ? sm.found : amax;
}

}  // namespace

void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(rows >= 0 && rows < (int64_t(1) << 31) && vocab > 0 && vocab < (int64_t(1) << 31),
                    "argmax_rows: bad shape");
  if (rows == 0) return;
  argmax_kernel<<<unsigned(rows), kThreads, 0, s>>>(logits, vocab, ids);
  ATOM_CUDA_CHECK_LAUNCH();
}

void sample_rows(const float* logits, int64_t rows, int64_t vocab, const GpuRowSampling* params, int32_t* ids,
                 cudaStream_t s) {
  ATOM_CUDA_REQUIRE(rows >= 0 && rows < (int64_t(1) << 31) && vocab > 0 && vocab < (int64_t(1) << 31),
                    "sample_rows: bad shape");
  if (rows == 0) return;
  sample_kernel<<<unsigned(rows), kSampleThreads, 0, s>>>(logits, vocab, params, ids);
  ATOM_CUDA_CHECK_LAUNCH();
}

double sampling_uniform(uint64_t seed, uint64_t counter) { return uniform01(seed, counter); }

}  // namespace atom::cuda
