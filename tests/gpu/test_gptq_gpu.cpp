// GPTQ on the GPU (gptq_gpu.h) against the CPU reference gptq_quantize_atom on fresh random layers with
// correlated inputs, a dead channel, ragged groups, groups wider than the GPTQ block and both outlier
// formats. Both run in double precision with the same rounding rules; they differ only in the summation
// order of the lazy-update GEMM (cuBLAS vs OpenBLAS), so a code may flip only where a value sits within
// ~1e-15 of a rounding boundary: the test allows 0.1% of codes and scales to differ, the GPTQ loss
// 1e-6 relative and the layer-output error proxy 1e-4 relative. Bad input throws as on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "atom/backend/cuda/gptq_gpu.h"
#include "atom/core/error.h"
#include "atom/quant/int4.h"
#include "gptq_test_util.h"
#include "gpu_test_util.h"

using namespace atom;
using namespace atom::quant;

namespace {
using namespace gpu_test;

template <typename T>
int64_t count_diff(const std::vector<T>& a, const std::vector<T>& b) {
  EXPECT_EQ(a.size(), b.size());
  int64_t d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d += a[i] != b[i];
  return d;
}

std::vector<int8_t> codes(const AtomWeights& w) {
  const AtomLayout L = w.layout();
  const int64_t rb = int4_bytes(L.k_normal);
  std::vector<int8_t> q(size_t(w.out_features * L.k_normal));
  for (int64_t r = 0; r < w.out_features; ++r) unpack_int4(w.w_int4.data() + r * rb, L.k_normal, q.data() + r * L.k_normal);
  return q;
}

struct Case {
  const char* name;
  int64_t n, k;
  int n_outlier, group, outlier_bits;
  int64_t block;
};

}  // namespace

TEST(GpuGptq, MatchesCpuGptq) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const Case cases[] = {
      {"SmolLM2 576: 128 INT8 outliers, 448 = 3.5 groups", 160, 576, 128, 128, 8, 128},
      {"ragged 64-groups wider than the 32-column block", 50, 203, 8, 64, 8, 32},
      {"fp16 outliers", 96, 384, 32, 128, 16, 128},
      {"1024 x 512 (several lazy updates)", 512, 1024, 128, 128, 8, 128},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t rows = 2 * c.k;
    const std::vector<float> mix = atom::test::randn(rng, size_t(c.k / 2 * c.k), 1.0f / std::sqrt(float(c.k)));
    std::vector<float> chan = atom::test::randn(rng, size_t(c.k));
    for (float& v : chan) v = std::exp(v);
    std::vector<float> x = atom::test::correlated_inputs(rng, rows, c.k, mix, chan, 0.05f);
    for (int64_t i = 0; i < rows; ++i) x[size_t(i * c.k + c.k / 3)] = 0.0f;  // a dead channel
    const std::vector<int32_t> perm = atom::test::perm_by_diag(x, rows, c.k);
    const std::vector<double> h = atom::test::hessian(x, rows, c.k, perm);
    std::normal_distribution<float> nd(0.0f, 0.05f);
    std::vector<float> w(size_t(c.n * c.k));
    for (float& v : w) v = nd(rng);
    const std::vector<float> w_r = permute_columns(w.data(), c.n, c.k, perm);
    AtomConfig cfg;
    cfg.n_outlier = c.n_outlier;
    cfg.group = c.group;
    cfg.outlier_bits = c.outlier_bits;
    GptqOptions opt;
    opt.block = c.block;

    const GptqResult cpu = gptq_quantize_atom(w_r.data(), c.n, c.k, h.data(), perm, cfg, opt);
    const GptqResult gpu = atom::cuda::gptq_quantize_atom_gpu(w_r.data(), c.n, c.k, h.data(), perm, cfg, opt);
    EXPECT_EQ(gpu.dead_columns, 1);
    EXPECT_EQ(gpu.dead_columns, cpu.dead_columns);
    EXPECT_EQ(gpu.damp_used, cpu.damp_used);
    EXPECT_EQ(gpu.weights.perm, cpu.weights.perm);
    const int64_t nq = c.n * (c.k - c.n_outlier);
    EXPECT_LE(count_diff(codes(gpu.weights), codes(cpu.weights)), std::max<int64_t>(1, nq / 1000));
    EXPECT_LE(count_diff(gpu.weights.w_scale, cpu.weights.w_scale), std::max<int64_t>(1, int64_t(cpu.weights.w_scale.size()) / 1000));
    EXPECT_LE(count_diff(gpu.weights.w_outlier, cpu.weights.w_outlier), std::max<int64_t>(1, c.n * c.n_outlier / 1000));
    EXPECT_LE(count_diff(gpu.weights.w_outlier_scale, cpu.weights.w_outlier_scale), std::max<int64_t>(1, c.n / 1000));
    EXPECT_LE(count_diff(gpu.weights.w_outlier_fp16, cpu.weights.w_outlier_fp16), std::max<int64_t>(1, c.n * c.n_outlier / 1000));
    EXPECT_GT(cpu.loss, 0.0);
    EXPECT_NEAR(gpu.loss, cpu.loss, 1e-6 * cpu.loss);
    const double e_cpu = weight_error_proxy(w_r.data(), cpu.weights, h.data());
    const double e_gpu = weight_error_proxy(w_r.data(), gpu.weights, h.data());
    EXPECT_NEAR(e_gpu, e_cpu, 1e-4 * e_cpu);
  }
}

TEST(GpuGptq, BadInputThrows) {
  REQUIRE_GPU();
  const int64_t n = 8, k = 256;
  AtomConfig cfg;
  std::vector<int32_t> perm(static_cast<size_t>(k));
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<double> h(size_t(k * k), 0.0);
  for (int64_t j = 0; j < k; ++j) h[size_t(j * k + j)] = 1.0 + double(j % 5);
  std::vector<float> w(size_t(n * k), 0.01f);
  w[17] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(atom::cuda::gptq_quantize_atom_gpu(w.data(), n, k, h.data(), perm, cfg), atom::Error);
  w[17] = 0.01f;
  std::vector<double> neg(size_t(k * k), 0.0);  // negative definite: no damping in the schedule helps
  for (int64_t j = 0; j < k; ++j) neg[size_t(j * k + j)] = -1.0;
  EXPECT_THROW(atom::cuda::gptq_quantize_atom_gpu(w.data(), n, k, neg.data(), perm, cfg), atom::Error);
  EXPECT_THROW(gptq_quantize_atom(w.data(), n, k, neg.data(), perm, cfg), atom::Error);  // as the CPU does
  h[5] = std::numeric_limits<double>::infinity();
  EXPECT_THROW(atom::cuda::gptq_quantize_atom_gpu(w.data(), n, k, h.data(), perm, cfg), atom::Error);
}
