// The device half of GPTQ on the GPU (gptq_gpu.h): the weight transpose into column-major double, the
// Hessian helpers, and the in-block column walk with one thread per output row. Layout and rules:
// gptq_gpu_kernels.h.
#include <cuda_fp16.h>

#include "atom/backend/cuda/cuda_check.h"
#include "atom/backend/cuda/gptq_gpu_kernels.h"
#include "atom/backend/cuda/quant_rules.cuh"

namespace atom::cuda::gptq_detail {
namespace {

constexpr int kTile = 32;

// wt[i * n + r] = dead[i] ? 0 : w[r * k + i], through a shared-memory tile (both sides coalesced).
__global__ void transpose_kernel(const float* w, int64_t n, int64_t k, const uint8_t* dead, double* wt) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t c0 = int64_t(blockIdx.x) * kTile, r0 = int64_t(blockIdx.y) * kTile;
  for (int y = threadIdx.y; y < kTile; y += blockDim.y) {
    const int64_t r = r0 + y, c = c0 + threadIdx.x;
    if (r < n && c < k) tile[y][threadIdx.x] = w[r * k + c];
  }
  __syncthreads();
  for (int y = threadIdx.y; y < kTile; y += blockDim.y) {
    const int64_t c = c0 + y, r = r0 + threadIdx.x;
    if (r < n && c < k) wt[c * n + r] = dead[c] ? 0.0 : double(tile[threadIdx.x][y]);
  }
}

__global__ void add_diagonal_kernel(double* a, int64_t k, double d) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < k) a[i * k + i] += d;
}

// Column-major: element (i, j) at a[i + j * k]; the lower triangle (i > j) takes the upper's (j, i).
__global__ void symmetrize_kernel(double* a, int64_t k) {
  const int64_t i = int64_t(blockIdx.y) * blockDim.y + threadIdx.y, j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < k && j < k && i > j) a[i + j * k] = a[j + i * k];
}

// gptq.cpp's row loop for columns [i1, i2) of row r, operation for operation (double weights, float
// scales and rounding, IEEE division).
__global__ void block_kernel(const BlockArgs a) {
  const int64_t r = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= a.n) return;
  const int64_t n = a.n;
  double loss = a.loss[r];
  float s = 0.0f;  // the current group's (or the outlier block's) scale
  int64_t s_of = -2;  // which: group index, -1 = the outliers
  for (int64_t i = a.i1; i < a.i2; ++i) {
    double* wcol = a.w + i * n;
    const double wi = wcol[r];
    double wq;
    if (i < a.kn) {
      const int64_t g = i / a.group, gb = g * a.group;
      if (i == gb) {  // group start: the scale from the updated group
        const int64_t ge = gb + a.group < a.kn ? gb + a.group : a.kn;
        float amax = 0.0f;
        for (int64_t j = i; j < ge; ++j) {
          const float v = fabsf(__double2float_rn(a.w[j * n + r]));
          amax = amax < v ? v : amax;
        }
        __half h;
        s = quant_rules::sym_scale_fp16(amax, a.w_clip, 7.0f, h);
        a.scale[g * n + r] = s;
        s_of = g;
      } else if (s_of != g) {  // a group that started in an earlier block
        s = a.scale[g * n + r];
        s_of = g;
      }
      const int q = quant_rules::sym_quant(__double2float_rn(wi), s, -8.0f, 7.0f);
      a.qn[i * n + r] = int8_t(q);
      wq = double(q) * double(s);
    } else if (a.int8_outliers) {
      const int64_t j0 = i - a.kn;
      if (j0 == 0) {  // outlier start: the per-row scale from the updated outlier block
        float amax = 0.0f;
        for (int64_t j = a.kn; j < a.k; ++j) {
          const float v = fabsf(__double2float_rn(a.w[j * n + r]));
          amax = amax < v ? v : amax;
        }
        __half h;
        s = quant_rules::sym_scale_fp16(amax, a.w_outlier_clip, 127.0f, h);
        a.so[r] = s;
        s_of = -1;
      } else if (s_of != -1) {
        s = a.so[r];
        s_of = -1;
      }
      const int q = quant_rules::sym_quant(__double2float_rn(wi), s, -127.0f, 127.0f);
      a.qo[j0 * n + r] = int8_t(q);
      wq = double(q) * double(s);
    } else {  // fp16 outliers
      const float f = __half2float(__float2half_rn(__double2float_rn(wi)));
      a.fo[(i - a.kn) * n + r] = f;
      wq = double(f);
    }
    const double* u = a.ur + i * a.k;
    const double d = u[i];
    const double diff = wi - wq;
    const double err = diff / d;
    loss += diff * diff / (d * d) / 2.0;
    for (int64_t j = i + 1; j < a.i2; ++j) a.w[j * n + r] -= err * u[j];  // feedback inside the block
    wcol[r] = wq;
    a.err[(i - a.i1) * n + r] = err;
  }
  a.loss[r] = loss;
}

}  // namespace

void transpose_to_double(const float* w, int64_t n, int64_t k, const uint8_t* dead, double* wt, cudaStream_t s) {
  const dim3 grid(unsigned((k + kTile - 1) / kTile), unsigned((n + kTile - 1) / kTile)), block(kTile, 8);
  transpose_kernel<<<grid, block, 0, s>>>(w, n, k, dead, wt);
  ATOM_CUDA_CHECK_LAUNCH();
}

void add_diagonal(double* a, int64_t k, double d, cudaStream_t s) {
  add_diagonal_kernel<<<unsigned((k + 255) / 256), 256, 0, s>>>(a, k, d);
  ATOM_CUDA_CHECK_LAUNCH();
}

void symmetrize_from_upper(double* a, int64_t k, cudaStream_t s) {
  const dim3 block(32, 8), grid(unsigned((k + 31) / 32), unsigned((k + 7) / 8));
  symmetrize_kernel<<<grid, block, 0, s>>>(a, k);
  ATOM_CUDA_CHECK_LAUNCH();
}

void quantize_block(const BlockArgs& a, cudaStream_t s) {
  block_kernel<<<unsigned((a.n + 127) / 128), 128, 0, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace atom::cuda::gptq_detail
