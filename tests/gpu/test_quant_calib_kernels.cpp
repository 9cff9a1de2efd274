// The GPU quantization backend's kernels (quant_calib_kernels.h) against the CPU functions they mirror,
// on identical inputs: the rounding kernels bit for bit (Atom activations with INT8 / fp16 outliers and
// ragged groups, W8A8 activations with and without smoothing, the KV format), the fp32 block kernels
// within a few ulp, and the statistics' accumulation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "atom/backend/cpu/ops.h"
#include "atom/backend/cuda/quant_calib_kernels.h"
#include "atom/model/rope.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/kv_quant.h"
#include "atom/quant/w8a8_linear.h"
#include "gpu_test_util.h"

namespace gpu_test {
namespace {

int64_t bit_mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  int64_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) bad += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return bad;
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return m / std::max(scale, 1e-30);
}

}  // namespace

TEST(GpuQuantCalibKernels, AtomActivationsBitExact) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  struct Case { int64_t m, k, ldx; int n_outlier, group, outlier_bits; float a_clip, o_clip; };
  for (const Case cs : {Case{37, 300, 300, 16, 64, 8, 0.9f, 1.0f}, Case{19, 576, 600, 128, 128, 8, 0.9f, 0.95f},
                        Case{23, 200, 200, 16, 64, 16, 1.0f, 1.0f}, Case{9, 130, 130, 0, 0, 8, 0.9f, 1.0f}}) {
    SCOPED_TRACE(cs.k);
    quant::AtomConfig cfg;
    cfg.n_outlier = cs.n_outlier;
    cfg.group = cs.group;
    cfg.outlier_bits = cs.outlier_bits;
    cfg.a_clip = cs.a_clip;
    cfg.a_outlier_clip = cs.o_clip;
    const quant::AtomLayout L(cs.k, cfg);
    const auto perm = random_perm(cs.k, rng);
    const auto xs = random_acts(cs.m, cs.ldx, rng);  // rows of ldx values; the first k are the input
    std::vector<float> x(size_t(cs.m * cs.k));
    for (int64_t r = 0; r < cs.m; ++r) std::copy_n(&xs[size_t(r * cs.ldx)], cs.k, &x[size_t(r * cs.k)]);
    quant::AtomActivations act;
    quant::atom_quantize_activations(x.data(), cs.m, perm, L, cfg, act);
    const int64_t G = L.n_groups + (L.int8_outliers ? 1 : 0);
    std::vector<float> want(x.size());
    for (int64_t r = 0; r < cs.m; ++r)
      for (int64_t j = 0; j < cs.k; ++j) {
        float v;
        if (j < L.k_normal) v = float(act.q[size_t(r * cs.k + j)]) * act.scale[size_t(r * G + j / L.group)];
        else if (L.int8_outliers) v = float(act.q[size_t(r * cs.k + j)]) * act.scale[size_t(r * G + L.n_groups)];
        else v = act.outlier_fp16[size_t(r * L.n_outlier + (j - L.k_normal))];
        want[size_t(r * cs.k + perm[size_t(j)])] = v;
      }
    DeviceBuffer<float> dx, dout(x.size());
    DeviceBuffer<int32_t> dp;
    dx.upload(xs);
    dp.upload(perm);
    calib::AtomActQuant a;
    a.perm = dp.data();
    a.k = L.k;
    a.k_normal = L.k_normal;
    a.group = L.group;
    a.n_groups = L.n_groups;
    a.n_outlier = L.n_outlier;
    a.int8_outliers = L.int8_outliers;
    a.a_clip = cfg.a_clip;
    a.a_outlier_clip = cfg.a_outlier_clip;
    calib::atom_act_fake_quant(dx.data(), cs.ldx, cs.m, a, dout.data(), nullptr);
    EXPECT_EQ(bit_mismatches(dout.download(), want), 0);
  }
}

TEST(GpuQuantCalibKernels, W8A8ActivationsBitExact) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const int64_t m = 29, k = 333;
  const auto x = random_acts(m, k, rng);
  std::uniform_real_distribution<float> ud(0.3f, 3.0f);
  std::vector<float> smooth(static_cast<size_t>(k));
  for (float& s : smooth) s = ud(rng);
  for (bool with_smooth : {false, true}) {
    SCOPED_TRACE(with_smooth);
    const std::vector<float> sm = with_smooth ? smooth : std::vector<float>{};
    std::vector<int8_t> q(size_t(m * k));
    std::vector<float> sc(static_cast<size_t>(m)), want(size_t(m * k));
    quant::w8a8_quantize_activations(x.data(), m, k, sm, q.data(), sc.data());
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j) want[size_t(r * k + j)] = float(q[size_t(r * k + j)]) * sc[size_t(r)];
    DeviceBuffer<float> dx, ds, dout(x.size());
    dx.upload(x);
    if (with_smooth) ds.upload(smooth);
    calib::w8a8_act_fake_quant(dx.data(), k, m, k, with_smooth ? ds.data() : nullptr, dout.data(), nullptr);
    EXPECT_EQ(bit_mismatches(dout.download(), want), 0);
  }
}

TEST(GpuQuantCalibKernels, KvFormatBitExact) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const int64_t m = 41, n_heads = 3, hd = 64, stride = n_heads * hd + 8;
  for (int bits : {4, 8}) {
    SCOPED_TRACE(bits);
    std::vector<float> rows = random_acts(m, stride, rng);
    for (int64_t i = 0; i < stride; ++i) rows[size_t(5 * stride + i)] = std::fabs(rows[size_t(5 * stride + i)]);  // all >= 0
    DeviceBuffer<float> d;
    d.upload(rows);
    quant::kv_fake_quant_rows(rows.data(), m, stride, int(n_heads), int(hd), bits);
    calib::kv_fake_quant(d.data(), m, stride, int(n_heads), int(hd), bits, nullptr);
    EXPECT_EQ(bit_mismatches(d.download(), rows), 0);
  }
}

TEST(GpuQuantCalibKernels, BlockKernelsMatchCpu) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const int64_t m = 45, n = 320;
  const auto x = random_acts(m, n, rng), w = random_acts(1, n, rng), u = random_acts(m, n, rng);
  DeviceBuffer<float> dx, dw, du, dy(x.size());
  dx.upload(x);
  dw.upload(w);
  du.upload(u);
  std::vector<float> y(x.size());
  // RMSNorm: the double sum in another order can move the fp32 rstd by an ulp (measured: exact or 1 ulp).
  cpu::rmsnorm(x.data(), w.data(), y.data(), m, n, 1e-5f);
  calib::rmsnorm(dx.data(), dw.data(), dy.data(), m, n, 1e-5f, nullptr);
  EXPECT_LE(max_rel_diff(dy.download(), y), 1e-6);
  // SiLU·up: expf vs glibc exp (<= 2 ulp).
  cpu::silu_mul(x.data(), u.data(), y.data(), m * n);
  calib::silu_mul(dx.data(), du.data(), dy.data(), m * n, nullptr);
  EXPECT_LE(max_rel_diff(dy.download(), y), 1e-6);
  // RoPE at positions 7.. on 5 heads of 64 (row stride n = 320): cosf / sinf vs glibc.
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 10000.0f;
  const auto inv = rope_inv_freq(c);
  DeviceBuffer<float> dinv;
  dinv.upload(inv);
  std::vector<float> r = x;
  for (int64_t i = 0; i < m; ++i) rope_apply(&r[size_t(i * n)], 5, 64, inv.data(), int(7 + i));
  ASSERT_EQ(cudaMemcpy(dy.data(), dx.data(), dx.bytes(), cudaMemcpyDeviceToDevice), cudaSuccess);
  calib::rope(dy.data(), m, n, 5, 64, dinv.data(), 7, nullptr);
  EXPECT_LE(max_rel_diff(dy.download(), r), 1e-5);
  // Causal softmax of 2 heads of T x T scores.
  const int64_t T = 37;
  auto sc = random_acts(2 * T, T, rng);
  DeviceBuffer<float> ds;
  ds.upload(sc);
  for (int64_t row = 0; row < 2 * T; ++row) {
    float* s = &sc[size_t(row * T)];
    const int64_t visible = row % T + 1;
    cpu::softmax_inplace(s, visible);
    std::fill(s + visible, s + T, 0.0f);
  }
  calib::causal_softmax(ds.data(), 2, T, nullptr);
  EXPECT_LE(max_rel_diff(ds.download(), sc), 1e-6);
}

TEST(GpuQuantCalibKernels, StatisticsMatchInputStats) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const int64_t m = 300, k = 70;
  auto x = random_acts(m, k, rng);
  x[17] = std::numeric_limits<float>::quiet_NaN();  // ignored by max|x| on both sides
  quant::InputStats st(k, false);
  st.add(x.data(), m);
  DeviceBuffer<float> dx;
  dx.upload(x);
  DeviceBuffer<double> ss{size_t(k)};
  DeviceBuffer<unsigned> amax{size_t(k)};
  ss.fill_bytes(0);
  amax.fill_bytes(0);
  calib::column_stats(dx.data(), m, k, ss.data(), amax.data(), nullptr);
  const auto g_ss = ss.download();
  const auto g_bits = amax.download();
  for (int64_t j = 0; j < k; ++j) {
    if (j == 17) continue;  // NaN: the CPU's double sum is NaN there
    EXPECT_NEAR(g_ss[size_t(j)], st.sumsq[size_t(j)], 1e-12 * st.sumsq[size_t(j)]) << j;
    float a;
    std::memcpy(&a, &g_bits[size_t(j)], sizeof(float));
    EXPECT_EQ(a, st.absmax[size_t(j)]) << j;
  }
  // accumulate_upper adds exactly the row-major upper triangle.
  std::vector<float> part(size_t(k * k));
  for (float& v : part) v = float(rng() % 1000) - 500.0f;
  std::vector<double> acc(size_t(k * k), 0.25);
  DeviceBuffer<float> dp;
  DeviceBuffer<double> da;
  dp.upload(part);
  da.upload(acc);
  calib::accumulate_upper(da.data(), dp.data(), k, nullptr);
  const auto got = da.download();
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b)
      EXPECT_EQ(got[size_t(a * k + b)], b >= a ? 0.25 + double(part[size_t(a * k + b)]) : 0.25);
}

}  // namespace gpu_test
