// Calibration-like inputs for the GPTQ tests (CPU: test_quant_gptq.cpp; GPU: gpu/test_gptq_gpu.cpp):
// correlated channels of log-normal magnitude, their Hessian and the magnitude reorder.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "test_util.h"

namespace atom::test {

// X = (Z·M + noise·E)·diag(c): Z [rows, latent], M [latent, k] mixes the latent factors into every
// channel (strongly correlated channels when latent < k, as in real activations), small isotropic
// noise keeps H well conditioned, c gives log-normal channel magnitudes.
inline std::vector<float> correlated_inputs(std::mt19937_64& rng, int64_t rows, int64_t k, const std::vector<float>& mix,
                                     const std::vector<float>& chan, float noise = 0.0f) {
  const int64_t latent = int64_t(mix.size()) / k;
  std::vector<float> z = randn(rng, size_t(rows * latent)), x = randn(rng, size_t(rows * k), noise);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t a = 0; a < latent; ++a) {
      const float za = z[size_t(i * latent + a)];
      for (int64_t j = 0; j < k; ++j) x[size_t(i * k + j)] += za * mix[size_t(a * k + j)];
    }
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) x[size_t(i * k + j)] *= chan[size_t(j)];
  return x;
}

// H = 2·XᵀX/rows, with rows/columns permuted by perm.
inline std::vector<double> hessian(const std::vector<float>& x, int64_t rows, int64_t k, const std::vector<int32_t>& perm) {
  std::vector<double> h(size_t(k * k), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t a = 0; a < k; ++a) {
      const double xa = x[size_t(i * k + perm[size_t(a)])];
      if (xa == 0.0) continue;
      for (int64_t b = 0; b < k; ++b) h[size_t(a * k + b)] += xa * x[size_t(i * k + perm[size_t(b)])];
    }
  for (double& v : h) v *= 2.0 / double(rows);
  return h;
}

inline std::vector<int32_t> perm_by_diag(const std::vector<float>& x, int64_t rows, int64_t k) {
  std::vector<double> ss(static_cast<size_t>(k), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < k; ++j) ss[size_t(j)] += double(x[size_t(i * k + j)]) * x[size_t(i * k + j)];
  std::vector<int32_t> p(static_cast<size_t>(k));
  std::iota(p.begin(), p.end(), 0);
  std::stable_sort(p.begin(), p.end(), [&](int32_t a, int32_t b) { return ss[size_t(a)] < ss[size_t(b)]; });
  return p;
}

}  // namespace atom::test
