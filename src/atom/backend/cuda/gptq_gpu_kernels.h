// Kernels of GPTQ on the GPU (gptq_gpu.h). Column-major on the device: column i of an [n, k] matrix is
// the n contiguous values at i * n. U (chol(H⁻¹) upper) is row-major here: row i at ur + i * k.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace atom::cuda::gptq_detail {

// wt [k][n] (column-major W, double) from the row-major fp32 [n, k] w; dead columns become 0.
void transpose_to_double(const float* w, int64_t n, int64_t k, const uint8_t* dead, double* wt, cudaStream_t s);
// a[i, i] += d for a k x k matrix.
void add_diagonal(double* a, int64_t k, double d, cudaStream_t s);
// Column-major k x k: copies the upper triangle onto the lower (potri leaves the lower as it was).
void symmetrize_from_upper(double* a, int64_t k, cudaStream_t s);

// Columns [i1, i2) of every row: quantize with the Atom layout's rules, feed the error forward inside
// the block, record err = (w - ŵ) / U[i, i] for the lazy update and the row's GPTQ loss.
struct BlockArgs {
  double* w;           // [k][n], updated in place; column i ends as ŵ
  double* err;         // [i2 - i1][n]
  const double* ur;    // [k][k] row-major U
  int64_t n, k, i1, i2;
  int64_t kn, group;   // AtomLayout: normal columns, group width (> 0)
  bool int8_outliers;  // else the columns past kn are fp16 outliers
  float w_clip, w_outlier_clip;
  int8_t* qn;          // [kn][n] INT4 values
  float* scale;        // [n_groups][n]
  int8_t* qo;          // [k - kn][n] (int8 outliers)
  float* so;           // [n]         (int8 outliers)
  float* fo;           // [k - kn][n] (fp16 outliers)
  double* loss;        // [n], accumulated
};
void quantize_block(const BlockArgs& a, cudaStream_t s);

}  // namespace atom::cuda::gptq_detail
