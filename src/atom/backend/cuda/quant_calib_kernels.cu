// Kernels of the GPU quantization backend (quant_calib_kernels.h). IEEE fp32 arithmetic (__f*_rn where
// the CPU reference's order of operations matters), so each differs from its CPU function only by
// libm (expf, sinf/cosf: <= 2 ulp) and summation order.
#include <cuda_fp16.h>

#include "atom/backend/cuda/cuda_check.h"
#include "atom/backend/cuda/kv_quant.cuh"
#include "atom/backend/cuda/quant_calib_kernels.h"
#include "atom/backend/cuda/quant_rules.cuh"

namespace atom::cuda::calib {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 65535 * 32 ? (b > 0 ? b : 1) : 65535 * 32);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reduction of one value per thread (kThreads threads); every thread gets the result.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* sh) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // sh may still be read from a previous call
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  T r = sh[0];
  for (int w = 1; w < kThreads / 32; ++w) r = op(r, sh[w]);
  return r;
}

__global__ void rmsnorm_kernel(const float* x, const float* w, float* y, int64_t n, float eps) {
  __shared__ double sh[kThreads / 32];
  const float* xr = x + blockIdx.x * n;
  float* yr = y + blockIdx.x * n;
  double ss = 0;
  for (int64_t j = threadIdx.x; j < n; j += kThreads) ss += double(xr[j]) * double(xr[j]);
  ss = block_reduce(ss, [](double a, double b) { return a + b; }, sh);
  const float r = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(float(ss / double(n)), eps)));
  for (int64_t j = threadIdx.x; j < n; j += kThreads) yr[j] = __fmul_rn(w[j], __fmul_rn(xr[j], r));
}

// One thread per (row, head, i < head_dim / 2).
__global__ void rope_kernel(float* x, int64_t m, int64_t stride, int n_heads, int half, const float* inv_freq,
                            int64_t pos0) {
  const int64_t total = m * n_heads * half;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int i = int(t % half);
    const int h = int((t / half) % n_heads);
    const int64_t r = t / (int64_t(half) * n_heads);
    const float angle = __fmul_rn(float(pos0 + r), inv_freq[i]);
    const float c = cosf(angle), sn = sinf(angle);
    float* v = x + r * stride + int64_t(h) * 2 * half;
    const float a = v[i], b = v[i + half];
    v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn));
    v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn));
  }
}

__global__ void silu_mul_kernel(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = __fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-g))), up[i]);
  }
}

// One block per (head, query row).
__global__ void causal_softmax_kernel(float* scores, int64_t T) {
  __shared__ float shf[kThreads / 32];
  __shared__ double shd[kThreads / 32];
  const int64_t row = blockIdx.x;  // head * T + i
  const int64_t i = row % T, visible = i + 1;
  float* s = scores + row * T;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < visible; j += kThreads) mx = fmaxf(mx, s[j]);
  mx = block_reduce(mx, [](float a, float b) { return fmaxf(a, b); }, shf);
  double sum = 0;
  for (int64_t j = threadIdx.x; j < visible; j += kThreads) {
    const float e = expf(__fsub_rn(s[j], mx));
    s[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, [](double a, double b) { return a + b; }, shd);
  const float inv = float(1.0 / sum);
  for (int64_t j = threadIdx.x; j < T; j += kThreads) s[j] = j < visible ? __fmul_rn(s[j], inv) : 0.0f;
}

// One warp per (row, head).
template <int QMAX>
__global__ void kv_fake_quant_kernel(float* rows, int64_t m, int64_t stride, int n_heads, int head_dim) {
  const int64_t task = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (task >= m * n_heads) return;  // whole warps leave together
  float* x = rows + (task / n_heads) * stride + (task % n_heads) * int64_t(head_dim);
  float lo = 0.0f, hi = 0.0f;
  for (int j = lane; j < head_dim; j += 32) {
    lo = fminf(lo, x[j]);
    hi = fmaxf(hi, x[j]);
  }
  const kvq::Params p = kvq::warp_params<QMAX>(lo, hi);
  for (int j = lane; j < head_dim; j += 32)
    x[j] = __fmul_rn(float(kvq::quantize<QMAX>(x[j], p)) - p.zero, p.scale);  // (q - zero)·scale
}

// One block per row; warp w takes the quantization groups w, w + 8, ... (the outlier tail is the last).
__global__ void atom_act_kernel(const float* x, int64_t ldx, AtomActQuant a, float* out) {
  namespace qr = quant_rules;
  const float* xr = x + blockIdx.x * ldx;
  float* o = out + blockIdx.x * a.k;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t tasks = a.n_groups + (a.n_outlier > 0 ? 1 : 0);
  for (int64_t g = warp; g < tasks; g += kThreads / 32) {
    const bool tail = g == a.n_groups;
    const int64_t b = tail ? a.k_normal : g * a.group;
    const int64_t e = tail ? a.k : (b + a.group < a.k_normal ? b + a.group : a.k_normal);
    if (tail && !a.int8_outliers) {  // fp16 outliers: the value rounded to fp16
      for (int64_t j = b + lane; j < e; j += 32) o[a.perm[j]] = __half2float(__float2half_rn(xr[a.perm[j]]));
      continue;
    }
    float amax = 0.0f;
    for (int64_t j = b + lane; j < e; j += 32) amax = fmaxf(amax, fabsf(xr[a.perm[j]]));
    amax = warp_max(amax);
    const float qmax = tail ? 127.0f : 7.0f, qmin = tail ? -127.0f : -8.0f;
    __half h;
    const float sc = qr::sym_scale_fp16(amax, tail ? a.a_outlier_clip : a.a_clip, qmax, h);
    const float r = qr::sym_recip(sc);  // activations: quantize.h's sym_quant_recip
    for (int64_t j = b + lane; j < e; j += 32) {
      const int32_t c = a.perm[j];
      o[c] = __fmul_rn(float(qr::sym_quant_recip(xr[c], r, qmin, qmax)), sc);
    }
  }
}

// One block per row.
__global__ void w8a8_act_kernel(const float* x, int64_t ldx, int64_t k, const float* smooth, float* out) {
  namespace qr = quant_rules;
  __shared__ float sh[kThreads / 32];
  const float* xr = x + blockIdx.x * ldx;
  float* o = out + blockIdx.x * k;
  float amax = 0.0f;
  for (int64_t j = threadIdx.x; j < k; j += kThreads) {
    const float v = smooth ? __fdiv_rn(xr[j], smooth[j]) : xr[j];
    amax = fmaxf(amax, fabsf(v));
  }
  amax = block_reduce(amax, [](float p, float q) { return fmaxf(p, q); }, sh);
  __half h;
  const float sc = qr::sym_scale_fp16(amax, 1.0f, 127.0f, h);
  for (int64_t j = threadIdx.x; j < k; j += kThreads) {
    const float v = smooth ? __fdiv_rn(xr[j], smooth[j]) : xr[j];
    o[j] = __fmul_rn(float(qr::sym_quant(v, sc, -127.0f, 127.0f)), sc);
  }
}

// Grid (channel blocks, row chunks): each thread sums one channel over its chunk's rows in double.
constexpr int64_t kStatRows = 256;
__global__ void column_stats_kernel(const float* x, int64_t m, int64_t k, double* sumsq, unsigned* absmax_bits) {
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= k) return;
  const int64_t r0 = blockIdx.y * kStatRows, r1 = r0 + kStatRows < m ? r0 + kStatRows : m;
  double ss = 0;
  float mx = 0.0f;
  for (int64_t r = r0; r < r1; ++r) {
    const float v = x[r * k + j];
    ss += double(v) * double(v);
    mx = fmaxf(mx, fabsf(v));  // NaN ignored, as std::max(absmax, NaN)
  }
  atomicAdd(&sumsq[j], ss);
  atomicMax(&absmax_bits[j], __float_as_uint(mx));
}

__global__ void accumulate_upper_kernel(double* acc, const float* part, int64_t k) {
  const int64_t total = k * k;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x)
    if (t % k >= t / k) acc[t] += double(part[t]);
}

}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int64_t m, int64_t n, float eps, cudaStream_t s) {
  if (m <= 0) return;
  rmsnorm_kernel<<<unsigned(m), kThreads, 0, s>>>(x, w, y, n, eps);
  ATOM_CUDA_CHECK_LAUNCH();
}

void rope(float* x, int64_t m, int64_t stride, int n_heads, int head_dim, const float* inv_freq, int64_t pos0,
          cudaStream_t s) {
  const int64_t total = m * n_heads * (head_dim / 2);
  if (total <= 0) return;
  rope_kernel<<<grid_for(total), kThreads, 0, s>>>(x, m, stride, n_heads, head_dim / 2, inv_freq, pos0);
  ATOM_CUDA_CHECK_LAUNCH();
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  silu_mul_kernel<<<grid_for(n), kThreads, 0, s>>>(gate, up, out, n);
  ATOM_CUDA_CHECK_LAUNCH();
}

void causal_softmax(float* scores, int n_heads, int64_t T, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(int64_t(n_heads) * T < (int64_t(1) << 31), "causal_softmax: too many rows");
  if (n_heads <= 0 || T <= 0) return;
  causal_softmax_kernel<<<unsigned(int64_t(n_heads) * T), kThreads, 0, s>>>(scores, T);
  ATOM_CUDA_CHECK_LAUNCH();
}

void kv_fake_quant(float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(bits == 4 || bits == 8, "kv_fake_quant: bits must be 4 or 8");
  const int64_t tasks = m * n_heads;
  if (tasks <= 0) return;
  const unsigned blocks = unsigned((tasks * 32 + kThreads - 1) / kThreads);
  if (bits == 4) kv_fake_quant_kernel<15><<<blocks, kThreads, 0, s>>>(rows, m, stride, n_heads, head_dim);
  else kv_fake_quant_kernel<255><<<blocks, kThreads, 0, s>>>(rows, m, stride, n_heads, head_dim);
  ATOM_CUDA_CHECK_LAUNCH();
}

void atom_act_fake_quant(const float* x, int64_t ldx, int64_t m, const AtomActQuant& a, float* out, cudaStream_t s) {
  ATOM_CUDA_REQUIRE(a.perm && a.k > 0 && a.group > 0 && a.k_normal + a.n_outlier == a.k,
                    "atom_act_fake_quant: bad layout");
  if (m <= 0) return;
  atom_act_kernel<<<unsigned(m), kThreads, 0, s>>>(x, ldx, a, out);
  ATOM_CUDA_CHECK_LAUNCH();
}

void w8a8_act_fake_quant(const float* x, int64_t ldx, int64_t m, int64_t k, const float* smooth, float* out,
                         cudaStream_t s) {
  if (m <= 0) return;
  w8a8_act_kernel<<<unsigned(m), kThreads, 0, s>>>(x, ldx, k, smooth, out);
  ATOM_CUDA_CHECK_LAUNCH();
}

void column_stats(const float* x, int64_t m, int64_t k, double* sumsq, unsigned* absmax_bits, cudaStream_t s) {
  if (m <= 0 || k <= 0) return;
  const dim3 grid(unsigned((k + kThreads - 1) / kThreads), unsigned((m + kStatRows - 1) / kStatRows));
  column_stats_kernel<<<grid, kThreads, 0, s>>>(x, m, k, sumsq, absmax_bits);
  ATOM_CUDA_CHECK_LAUNCH();
}

void accumulate_upper(double* acc, const float* part, int64_t k, cudaStream_t s) {
  if (k <= 0) return;
  accumulate_upper_kernel<<<grid_for(k * k), kThreads, 0, s>>>(acc, part, k);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace atom::cuda::calib
