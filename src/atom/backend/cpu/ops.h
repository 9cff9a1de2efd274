// CPU reference operators: fp32 in, fp32 accumulate, threaded (OpenMP + OpenBLAS).
// They define what every other backend must compute. Row-major everywhere.
#pragma once
#include <cstdint>

namespace atom::cpu {

// C[m,n] = A[m,k] · B[n,k]ᵀ (+ beta·C). lda/ldb/ldc are row strides in elements.
void gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, float beta = 0.0f);
// C[m,n] = A[m,k] · B[k,n] (+ beta·C).
void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, float beta = 0.0f);

// y[i,:] = x[i,:] / sqrt(mean(x[i,:]²) + eps) * w  (y may alias x)
void rmsnorm(const float* x, const float* w, float* y, int64_t m, int64_t n, float eps);

// out[i] = silu(gate[i]) * up[i]
void silu_mul(const float* gate, const float* up, float* out, int64_t n);

// x[i] += y[i]
void add_inplace(float* x, const float* y, int64_t n);

// Causal GQA attention for `m` new query rows at positions pos0..pos0+m-1 over keys/values
// 0..pos0+m-1. q, out: [m, n_heads*head_dim]; k, v: [pos0+m, n_kv_heads*head_dim] (row stride
// kv_stride). Scores scaled by 1/sqrt(head_dim), softmax in fp32.
void attention_causal(const float* q, const float* k, const float* v, float* out, int64_t m, int64_t pos0,
                      int n_heads, int n_kv_heads, int head_dim, int64_t kv_stride);

// In-place numerically stable softmax of a row.
void softmax_inplace(float* x, int64_t n);

// log(sum(exp(x))) of a row, stable.
double logsumexp(const float* x, int64_t n);

}  // namespace atom::cpu
