// GPU kernels of the Atom linear against the CPU reference (docs/quant-format.md §3), on fresh random
// inputs every run, outputs poisoned before each run:
//   * activation quantizer: INT4/INT8 integers and fp16 scales bit-exact vs atom_quantize_activations;
//   * W4A4+O128 GEMM: int32 partial sums P[m,n,g] exactly equal to AtomLinear::partial_sums, fp32 output
//     within 1e-6·(G+2)·Σ_g|s·P| of the double-precision formula, fp16 output within that + 2^-10·|y|.
// Every test skips when no CUDA device is visible (CI machines); scripts/gpu-check.sh runs them on an H100.
// ATOM_GPU_TEST_SMALL=1 (compute-sanitizer runs) keeps only the small shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/fused_quant.h"
#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/int4.h"
#include "gpu_test_util.h"

using namespace atom;
using namespace atom::cuda;

namespace {
using namespace gpu_test;


struct Shape {
  int64_t n, k;
};

std::vector<Shape> shapes() {
  std::vector<Shape> s = {{576, 576}, {1536, 576}, {576, 1536}, {200, 384}};
  if (!small_only()) s.insert(s.end(), {{4096, 4096}, {1024, 11008}, {14336 / 4, 4096}});
  return s;
}
std::vector<int64_t> ms() {
  if (small_only()) return {1, 17, 130};
  return {1, 5, 16, 33, 64, 129, 300};
}

quant::AtomConfig atom_cfg() { return quant::AtomConfig{}; }  // O=128, g=128, clips 0.85/0.9/1/1

TEST(GpuDevice, PropertiesAndErrors) {
  REQUIRE_GPU();
  const DeviceProps p = device_props();
  std::printf("%s: cc %d.%d, %d SMs, %zu MB L2\n", p.name.c_str(), p.cc_major, p.cc_minor, p.sm_count, p.l2_bytes >> 20);
  EXPECT_GE(p.sm_count, 1);
  // A failing call throws atom::Error naming the file, the call and the CUDA error.
  try {
    ATOM_CUDA_CHECK(cudaMemcpy(nullptr, reinterpret_cast<void*>(16), 64, cudaMemcpyDeviceToDevice));
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("test_atom_gpu.cpp"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cudaMemcpy"), std::string::npos) << e.what();
  }
  (void)cudaGetLastError();
}

TEST(GpuAtom, ActivationQuantizerMatchesCpuBitExact) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  Stream st;
  for (int64_t k : {576, 1536, 384, 4096}) {
    if (small_only() && k > 1536) continue;
    const quant::AtomConfig cfg = atom_cfg();
    const quant::AtomLayout QL(k, cfg);
    const GpuAtomLayout L = make_gpu_layout(k, QL.n_outlier, QL.group);
    const auto perm = random_perm(k, rng);
    DeviceBuffer<uint16_t> dstage;
    dstage.upload(atom_stage_table(perm, L), st);
    for (int64_t m : ms()) {
      const auto x = random_acts(m, k, rng);
      quant::AtomActivations cpu;
      quant::atom_quantize_activations(x.data(), m, perm, QL, cfg, cpu);
      DeviceBuffer<uint16_t> dx;
      dx.upload(to_fp16(x), st);
      GpuAtomActs g;
      g.resize(m, L);
      g.q4.fill_bytes(0xA5, st);  // poison
      g.scale.fill_bytes(0xFF, st);
      g.q8.fill_bytes(0x80, st);
      g.oscale.fill_bytes(0xFF, st);
      atom_quantize_acts_fp16(dx.data(), m, dstage.data(), L, cfg.a_clip, cfg.a_outlier_clip, g, st);
      st.sync();
      SCOPED_TRACE("k=" + std::to_string(k) + " m=" + std::to_string(m));
      expect_acts_equal(g, cpu, L, m);
    }
  }
}

// One shape, every tile configuration and split choice, against AtomLinear::partial_sums and the
// double-precision formula.
void check_gemm(int64_t n, int64_t k, const std::vector<int64_t>& mlist, std::mt19937_64& rng,
                std::vector<int> configs = {}) {
  if (configs.empty())
    for (int c = -1; c < atom_gemm_num_configs(); ++c) configs.push_back(c);
  const quant::AtomConfig cfg = atom_cfg();
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (auto& v : w) v = nd(rng);
  for (int64_t c = 0; c < n; c += 97) w[size_t(c * k + rng() % k)] *= 30.0f;  // some large weights
  const auto perm = random_perm(k, rng);
  const quant::AtomLinear lin(w.data(), n, k, perm, cfg);
  Stream st;
  GpuAtomWeights gw;
  upload_atom_weights(lin.weights(), gw, st);
  const GpuAtomLayout& L = gw.L;
  const int64_t G = L.n_groups, Gt = G + (L.n_outlier > 0 ? 1 : 0);
  const auto& W = lin.weights();
  for (int64_t m : mlist) {
    SCOPED_TRACE("n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(m));
    const auto x = random_acts(m, k, rng);
    quant::AtomActivations act;
    lin.quantize_input(x.data(), m, act);
    std::vector<int32_t> ref_ps;
    lin.partial_sums(act, ref_ps);
    // reference output (double) and the per-element magnitude bound from the same partial sums
    std::vector<double> yref(static_cast<size_t>(m * n)), ymag(size_t(m * n));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double y = 0, mag = 0;
        for (int64_t g = 0; g < Gt; ++g) {
          const bool out = g == G;
          const float s = act.scale[size_t(r * Gt + g)] * (out ? W.w_outlier_scale[size_t(c)] : W.w_scale[size_t(c * G + g)]);
          const double t = double(s) * ref_ps[size_t((r * n + c) * Gt + g)];
          y += t;
          mag += std::abs(t);
        }
        yref[size_t(r * n + c)] = y;
        ymag[size_t(r * n + c)] = mag;
      }
    DeviceBuffer<uint16_t> dx;
    dx.upload(to_fp16(x), st);
    GpuAtomActs ga;
    ga.resize(m, L);
    atom_quantize_acts_fp16(dx.data(), m, gw.stage.data(), L, gw.a_clip, gw.a_outlier_clip, ga, st);
    DeviceBuffer<int32_t> dps(static_cast<size_t>(m * n * Gt));
    DeviceBuffer<float> y32(static_cast<size_t>(m * n));
    DeviceBuffer<uint16_t> y16(static_cast<size_t>(m * n));
    for (int cfg_i : configs)
      for (int splits : {0, 1, 3}) {
        if (cfg_i == -1 && splits != 0) continue;
        if (cfg_i >= atom_gemm_wgmma_config() && !atom_gemm_wgmma_available()) continue;
        SCOPED_TRACE("config=" + std::to_string(cfg_i) + " splits=" + std::to_string(splits));
        dps.fill_bytes(0x80, st);   // poison: INT32_MIN-ish pattern
        y32.fill_bytes(0xFF, st);   // NaN
        y16.fill_bytes(0xFF, st);   // NaN
        atom_gemm(ga, gw, nullptr, y32.data(), dps.data(), st, cfg_i, splits);
        atom_gemm(ga, gw, y16.data(), nullptr, nullptr, st, cfg_i, splits);
        const auto ps = dps.download(st);
        const auto yf = y32.download(st);
        const auto yh = y16.download(st);
        int64_t bad_ps = 0, bad_y = 0, bad_h = 0;
        double worst = 0;
        for (size_t i = 0; i < ps.size(); ++i)
          if (ps[i] != ref_ps[i] && bad_ps++ < 5) ADD_FAILURE() << "psum " << i << ": " << ps[i] << " vs " << ref_ps[i];
        for (size_t i = 0; i < yf.size(); ++i) {
          const double tol = 1e-6 * double(Gt + 2) * ymag[i] + 1e-30;
          const double err = std::abs(double(yf[i]) - yref[i]);
          if (std::isfinite(yref[i])) worst = std::max(worst, err / (ymag[i] + 1e-30));
          if (!(err <= tol) && bad_y++ < 5) ADD_FAILURE() << "y32 " << i << ": " << yf[i] << " vs " << yref[i] << " tol " << tol;
          const double h = fp16_to_float(yh[i]);
          const double tolh = tol + std::ldexp(std::abs(yref[i]), -10) + 6e-8;
          if (!(std::abs(h - yref[i]) <= tolh) && bad_h++ < 5) ADD_FAILURE() << "y16 " << i << ": " << h << " vs " << yref[i];
        }
        EXPECT_EQ(bad_ps + bad_y + bad_h, 0) << "worst |err|/Σ|term| = " << worst;
      }
  }
}

TEST(GpuAtom, GemmMatchesCpuReference) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  for (const Shape& s : shapes()) check_gemm(s.n, s.k, ms(), rng);
}

// The sm_90a wgmma kernels (configs 3: 128x128 tile, 4: 64x128, 5/6: the same with the N-split
// promotion overlap, 7/8/9: warp-specialized with a 6- / 5-stage ring / the overlapped loop) at larger
// M: several 128-row tiles with a ragged last one, N not a multiple of 128 (ragged column tile), ragged
// last K group (K=576: 448 normal channels = 3.5 groups), a single group (K=256), and split-K; the
// mma.sync large-M config alongside as a cross-check.
TEST(GpuAtom, WgmmaGemmLargeMMatchesCpuReference) {
  REQUIRE_GPU();
  ASSERT_TRUE(atom_gemm_wgmma_available()) << "the GPU tests expect an sm_90 device";
  std::mt19937_64 rng(fresh_seed());
  std::vector<int> cfgs = {2};
  for (int c = atom_gemm_wgmma_config(); c < atom_gemm_num_configs(); ++c) cfgs.push_back(c);
  if (small_only()) {
    check_gemm(200, 576, {130}, rng, cfgs);
    return;
  }
  check_gemm(200, 576, {520, 64}, rng, cfgs);
  check_gemm(1536, 576, {777}, rng, cfgs);
  check_gemm(328, 256, {1000, 128}, rng, cfgs);
  check_gemm(576, 1536, {385}, rng, cfgs);
  check_gemm(2048, 576, {2100}, rng, cfgs);  // 272 tiles: more than one wave of CTAs on every config
}

// The literal reference (int64 sums, double accumulation) once, on a SmolLM2 shape with a ragged group.
TEST(GpuAtom, GemmMatchesLiteralReference) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  const int64_t n = 192, k = 576, m = 37;
  std::normal_distribution<float> nd(0.0f, 0.05f);
  std::vector<float> w(static_cast<size_t>(n * k));
  for (auto& v : w) v = nd(rng);
  const quant::AtomLinear lin(w.data(), n, k, random_perm(k, rng), atom_cfg());
  const auto x = random_acts(m, k, rng);
  std::vector<double> yref;
  std::vector<int64_t> ps_ref;
  quant::atom_linear_reference(lin.weights(), x.data(), m, yref, &ps_ref);
  Stream st;
  GpuAtomWeights gw;
  upload_atom_weights(lin.weights(), gw, st);
  DeviceBuffer<uint16_t> dx;
  dx.upload(to_fp16(x), st);
  GpuAtomActs ga;
  ga.resize(m, gw.L);
  atom_quantize_acts_fp16(dx.data(), m, gw.stage.data(), gw.L, gw.a_clip, gw.a_outlier_clip, ga, st);
  const int64_t Gt = gw.L.n_groups + 1;
  DeviceBuffer<int32_t> dps(static_cast<size_t>(m * n * Gt));
  DeviceBuffer<float> y32(static_cast<size_t>(m * n));
  dps.fill_bytes(0x80, st);
  y32.fill_bytes(0xFF, st);
  atom_gemm(ga, gw, nullptr, y32.data(), dps.data(), st);
  const auto ps = dps.download(st);
  const auto y = y32.download(st);
  ASSERT_EQ(ps.size(), ps_ref.size());
  for (size_t i = 0; i < ps.size(); ++i) ASSERT_EQ(int64_t(ps[i]), ps_ref[i]) << "psum " << i;
  double amax = 0, emax = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    amax = std::max(amax, std::abs(yref[i]));
    emax = std::max(emax, std::abs(double(y[i]) - yref[i]));
  }
  EXPECT_LE(emax, 1e-5 * amax) << "max abs err " << emax << " of max |y| " << amax;
}

// A CUDA graph captured around a split-K GEMM keeps the workspace pointers of its capture (the engine's
// decode graphs, gpu_model_graphs.cpp). A later eager GEMM that needs a larger workspace must not free
// them: capture a 2-split GEMM on a small layer, run a 2-split GEMM on a layer whose split-K buffer needs
// more than the workspace floor (16 MiB), churn device memory, replay the graph: its output must still be
// bit-identical to the eager run (2 splits: one fp32 addition per element, order-free). Config 11 sums the
// splits with fp32 atomics in a workspace; config 0 through partials summed by the tile's last CTA.
TEST(GpuAtom, SplitKWorkspaceSurvivesGrowthUnderGraphs) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  Stream st;
  std::normal_distribution<float> nd(0.0f, 0.02f);
  auto make_layer = [&](int64_t n, int64_t k, GpuAtomWeights& gw) {
    std::vector<float> w(static_cast<size_t>(n * k));
    for (auto& v : w) v = nd(rng);
    const quant::AtomLinear lin(w.data(), n, k, random_perm(k, rng), atom_cfg());
    upload_atom_weights(lin.weights(), gw, st);
    st.sync();  // lin's host arrays go out of scope
  };
  auto make_acts = [&](int64_t m, const GpuAtomWeights& gw, GpuAtomActs& ga) {
    DeviceBuffer<uint16_t> dx;
    dx.upload(to_fp16(random_acts(m, gw.L.k, rng)), st);
    ga.resize(m, gw.L);
    atom_quantize_acts_fp16(dx.data(), m, gw.stage.data(), gw.L, gw.a_clip, gw.a_outlier_clip, ga, st);
    st.sync();  // dx is freed on return
  };
  GpuAtomWeights small, big;
  make_layer(576, 576, small);
  make_layer(4096, 576, big);
  GpuAtomActs a_small, a_big;
  make_acts(16, small, a_small);
  make_acts(1100, big, a_big);  // 1100 x 4096 = 4.5 M fp32 > the 4 M-element floor (x 2 splits for config 0)
  for (int cfg : {11, 0}) {
    if (cfg == 11 && !atom_gemm_wgmma_available()) continue;
    SCOPED_TRACE("config=" + std::to_string(cfg));
    DeviceBuffer<uint16_t> y_eager(576 * 16), y_graph(576 * 16), y_big(size_t(1100) * 4096);
    atom_gemm(a_small, small, y_eager.data(), nullptr, nullptr, st, cfg, 2);
    y_graph.fill_bytes(0xFF, st);
    cudaGraph_t g = nullptr;
    cudaGraphExec_t ge = nullptr;
    ASSERT_EQ(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    atom_gemm(a_small, small, y_graph.data(), nullptr, nullptr, st, cfg, 2);
    ASSERT_EQ(cudaStreamEndCapture(st, &g), cudaSuccess);
    ASSERT_EQ(cudaGraphInstantiate(&ge, g, 0), cudaSuccess);
    cudaGraphDestroy(g);
    atom_gemm(a_big, big, y_big.data(), nullptr, nullptr, st, cfg, 2);  // grows the workspace
    {
      DeviceBuffer<uint8_t> churn(size_t(256) << 20);  // reuse whatever was freed, then free it again
      churn.fill_bytes(0x7F, st);
      st.sync();
    }
    ASSERT_EQ(cudaGraphLaunch(ge, st), cudaSuccess);
    st.sync();
    cudaGraphExecDestroy(ge);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    const auto e = y_eager.download(st), r = y_graph.download(st);
    EXPECT_EQ(std::memcmp(e.data(), r.data(), e.size() * 2), 0) << "the replayed graph's output differs";
  }
}

// Bad shapes and buffers get an atom::Error, not a launch that reads past an allocation: the decode
// kernel copies scales as 32-bit words, so scale buffers must hold GpuAtomLayout::scale_elems(rows).
TEST(GpuAtom, GemmRejectsBadBuffers) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  const int64_t n = 65, k = 1536, m = 3;  // odd rows x 11 groups: rows * G odd, the padded case
  std::normal_distribution<float> nd(0.0f, 0.02f);
  std::vector<float> w(size_t(n * k));
  for (auto& v : w) v = nd(rng);
  const quant::AtomLinear lin(w.data(), n, k, random_perm(k, rng), atom_cfg());
  Stream st;
  GpuAtomWeights gw;
  upload_atom_weights(lin.weights(), gw, st);
  EXPECT_EQ(int64_t(gw.scale.size()), gw.L.scale_elems(n));
  EXPECT_EQ(gw.L.scale_elems(n) % 2, 0);
  GpuAtomActs ga;
  ga.resize(m, gw.L);
  EXPECT_EQ(int64_t(ga.scale.size()), gw.L.scale_elems(m));
  const auto x = random_acts(m, k, rng);
  DeviceBuffer<uint16_t> dx;
  dx.upload(to_fp16(x), st);
  atom_quantize_acts_fp16(dx.data(), m, gw.stage.data(), gw.L, gw.a_clip, gw.a_outlier_clip, ga, st);
  DeviceBuffer<uint16_t> y16(size_t(m * n));
  DeviceBuffer<float> y32(size_t(m * n));
  EXPECT_THROW(atom_gemm(ga, gw, y16.data(), y32.data(), nullptr, st), atom::Error);  // two outputs
  EXPECT_THROW(atom_gemm(ga, gw, nullptr, nullptr, nullptr, st), atom::Error);        // none
  EXPECT_THROW(atom_gemm(ga, gw, y16.data(), nullptr, nullptr, st, 99), atom::Error);  // no such config
  ga.scale.resize(size_t(m * gw.L.n_groups));  // unpadded: the last word would cross the allocation
  EXPECT_THROW(atom_gemm(ga, gw, y16.data(), nullptr, nullptr, st), atom::Error);
  st.sync();
}

}  // namespace
