#include "atom/backend/cpu/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace atom::cpu {

void gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, float beta) {
  if (m <= 4) {
    // Decode-sized products: sgemm would repack all of B on every call; gemv streams it once.
    for (int64_t i = 0; i < m; ++i)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n), int(k), 1.0f, b, int(ldb), a + i * lda, 1, beta, c + i * ldc, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, a, int(lda), b, int(ldb),
              beta, c, int(ldc));
}

void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc, float beta) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a, int(lda), b,
              int(ldb), beta, c, int(ldc));
}

void rmsnorm(const float* x, const float* w, float* y, int64_t m, int64_t n, float eps) {
#pragma omp parallel for if (m > 16)
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) ss += double(xi[j]) * double(xi[j]);
    const float r = 1.0f / std::sqrt(float(ss / double(n)) + eps);
    for (int64_t j = 0; j < n; ++j) yi[j] = w[j] * (xi[j] * r);
  }
}

void silu_mul(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void softmax_inplace(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = float(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

double logsumexp(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(x[i]) - double(mx));
  return double(mx) + std::log(sum);
}

void attention_causal(const float* q, const float* k, const float* v, float* out, int64_t m, int64_t pos0,
                      int n_heads, int n_kv_heads, int head_dim, int64_t kv_stride) {
  const int group = n_heads / n_kv_heads;
  const int64_t q_stride = int64_t(n_heads) * head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  // Query rows go in blocks so the score matrix stays small and the causal triangle is skipped.
  // Threads split (head, row block) pairs; the BLAS calls inside a parallel region run
  // single-threaded (OpenMP OpenBLAS), so there is one level of parallelism and no oversubscription.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (m + kBlock - 1) / kBlock;
  const int64_t tasks = int64_t(n_heads) * blocks;
#pragma omp parallel if (tasks > 1 && m * (pos0 + m) > 4096)
  {
    std::vector<float> scores(size_t(std::min<int64_t>(m, kBlock) * (pos0 + m)));
#pragma omp for schedule(dynamic)
    for (int64_t t = 0; t < tasks; ++t) {
      const int h = int(t % n_heads);
      const int64_t r0 = (t / n_heads) * kBlock;
      const int kvh = h / group;
      const float* kh = k + int64_t(kvh) * head_dim;
      const float* vh = v + int64_t(kvh) * head_dim;
      const int64_t rows = std::min(kBlock, m - r0);
      const int64_t keys = pos0 + r0 + rows;  // the last row of the block sees this many keys
      const float* qb = q + r0 * q_stride + int64_t(h) * head_dim;
      gemm_nt(rows, keys, head_dim, qb, q_stride, kh, kv_stride, scores.data(), keys);
      for (int64_t r = 0; r < rows; ++r) {
        float* s = scores.data() + r * keys;
        const int64_t visible = pos0 + r0 + r + 1;
        for (int64_t j = 0; j < visible; ++j) s[j] *= scale;
        softmax_inplace(s, visible);
        std::fill(s + visible, s + keys, 0.0f);  // causal mask
      }
      gemm_nn(rows, head_dim, keys, scores.data(), keys, vh, kv_stride, out + r0 * q_stride + int64_t(h) * head_dim,
              q_stride);
    }
  }
}

}  // namespace atom::cpu
