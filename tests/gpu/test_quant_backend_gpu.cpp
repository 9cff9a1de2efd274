// The CUDA quantization backend (backend/cuda/quant_backend_gpu.h) against the CPU reference
// (quant/quant_backend.h) on tiny random Llamas (GQA, ragged groups):
//   BlockStatsMatchCpu        pass 1 statistics: Σx², max|x|, XᵀX and the kept error rows
//   AdvanceMatchesCpu         pass 2 through CPU-quantized blocks (Atom INT4 + INT8/fp16 outliers, a16,
//                             W8A8, TP segments; KV 4/8/16, pre-RoPE): residual streams layer by layer
// (test_quant_calib_kernels.cpp checks the rounding kernels bit for bit on identical inputs).
//   QuantizeModelMatchesCpu   quantize_model end to end on each backend: per-linear errors, reorders,
//                             and the quantized models' logits
//   BadInputThrows            clear atom::Errors
// Tolerances (stated in each test, measured values printed): the GPU runs the same fp32 arithmetic
// in another summation order, so statistics agree to ~1e-6 relative; pass 2 rounds activations with
// the CPU's rules, so a value may land on the other side of a rounding boundary only when the fp32
// inputs differ there (rare: bounds allow a few such flips).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "atom/backend/cuda/quant_backend_gpu.h"
#include "atom/core/error.h"
#include "atom/quant/quant_backend.h"
#include "gpu_model_test_util.h"

namespace gpu_test {
namespace {

// A random model closer to a trained one (as test_quant_pipeline.cpp's): a few large RMSNorm weights
// (outlier channels), q_proj scaled down so attention is not a near-argmax of random scores.
std::unique_ptr<LlamaModel> calib_model(uint64_t seed, const ModelConfig& c = tiny_config()) {
  auto m = make_random_llama(c, seed);
  std::mt19937_64 rng(seed ^ 0x5eed);
  for (LlamaLayer& L : m->layers) {
    for (std::vector<float>* norm : {&L.attn_norm, &L.ffn_norm})
      for (int i = 0; i < 4; ++i) (*norm)[size_t(rng() % norm->size())] *= 8.0f;
    for (float& v : static_cast<DenseLinear&>(*L.linear[int(LinearSlot::Q)]).mutable_weight()) v *= 0.25f;
  }
  return m;
}

std::vector<std::vector<int32_t>> windows(int n, int T, std::mt19937_64& rng) {
  std::vector<std::vector<int32_t>> w;
  for (int i = 0; i < n; ++i) w.push_back(random_tokens(T, rng));
  return w;
}

double rel_l2(const double* a, const double* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]) / std::max(std::fabs(b[i]), 1e-30));
  return m;
}

struct QuantSetup {
  const char* name;
  quant::QuantConfig cfg;
};

std::vector<QuantSetup> setups() {
  std::vector<QuantSetup> v;
  quant::QuantConfig c;  // Atom W4A4 + 128 INT8 outliers, group 128, GPTQ, KV4
  c.samples = 4;
  c.seqlen = 64;
  v.push_back({"atom-gptq-kv4", c});
  quant::QuantConfig r = c;  // ragged groups, fp16 outliers, RTN, KV8 before RoPE
  r.atom.group = 96;
  r.atom.n_outlier = 32;
  r.atom.outlier_bits = 16;
  r.gptq = false;
  r.kv_bits = 8;
  r.kv_pre_rope = true;
  v.push_back({"atom-rtn-g96-fp16outliers-kv8pre", r});
  quant::QuantConfig a16 = c;  // weight-only W4A16, fp KV
  a16.atom.a_bits = 16;
  a16.kv_bits = 16;
  v.push_back({"atom-w4a16-kv16", a16});
  quant::QuantConfig tp = c;  // o/down as two K-segments
  tp.tp_segments = 2;
  v.push_back({"atom-gptq-tp2", tp});
  quant::QuantConfig w8 = c;
  w8.method = "w8a8";
  w8.gptq = false;
  w8.kv_bits = 8;
  v.push_back({"w8a8-kv8", w8});
  return v;
}

}  // namespace

TEST(GpuQuantBackend, BlockStatsMatchCpu) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto model = calib_model(seed);
  const auto win = windows(3, 80, rng);
  auto cpu = quant::make_cpu_quant_backend();
  auto gpu = cuda::make_gpu_quant_backend();
  cpu->begin(*model, win);
  gpu->begin(*model, win);
  for (int64_t s = 0; s < 3; ++s) EXPECT_EQ(cpu->residual(s), gpu->residual(s)) << "embeddings of window " << s;
  for (int l = 0; l < model->cfg.num_layers; ++l) {
    const quant::BlockStats a = cpu->block_stats(*model, l, true), b = gpu->block_stats(*model, l, true);
    for (int k = 0; k < quant::kNumInputKinds; ++k) {
      SCOPED_TRACE(std::string("layer ") + std::to_string(l) + " input " + quant::input_kind_name(quant::InputKind(k)));
      ASSERT_EQ(a.in[k].k, b.in[k].k);
      EXPECT_EQ(a.in[k].rows, b.in[k].rows);
      ASSERT_EQ(b.in[k].xtx.size(), a.in[k].xtx.size());
      // Only the upper triangle is kept (InputStats::hessian reads a <= b): compare it.
      const int64_t K = a.in[k].k;
      std::vector<double> ua, ub;
      for (int64_t i = 0; i < K; ++i)
        for (int64_t j = i; j < K; ++j) {
          ua.push_back(a.in[k].xtx[size_t(i * K + j)]);
          ub.push_back(b.in[k].xtx[size_t(i * K + j)]);
        }
      const double e_sum = max_rel(b.in[k].sumsq, a.in[k].sumsq), e_xtx = rel_l2(ub.data(), ua.data(), ua.size());
      double e_max = 0;
      for (int64_t j = 0; j < K; ++j)
        e_max = std::max(e_max, std::fabs(double(b.in[k].absmax[size_t(j)]) - a.in[k].absmax[size_t(j)]) /
                                    std::max(double(a.in[k].absmax[size_t(j)]), 1e-30));
      ASSERT_EQ(b.rows[k].size(), a.rows[k].size());
      const double e_rows = rel_err(b.rows[k], a.rows[k]);
      std::printf("[ quant-gpu ] layer %d %-7s sumsq max rel %.2e, absmax max rel %.2e, XtX rel %.2e, rows rel %.2e\n",
                  l, quant::input_kind_name(quant::InputKind(k)), e_sum, e_max, e_xtx, e_rows);
      // Bound: 1e-4 relative (fp32 forward and SYRK in another summation order: measured ~1e-6).
      EXPECT_LE(e_sum, 1e-4);
      EXPECT_LE(e_max, 1e-4);
      EXPECT_LE(e_xtx, 1e-4);
      EXPECT_LE(e_rows, 1e-4);
      // Same reorder, except for channels whose Σx² tie within the rounding (then a swap is harmless).
      const auto pa = quant::reorder_by_magnitude(a.in[k].sumsq), pb = quant::reorder_by_magnitude(b.in[k].sumsq);
      int64_t moved = 0;
      for (size_t i = 0; i < pa.size(); ++i) moved += pa[i] != pb[i];
      EXPECT_LE(moved, 8) << moved << " reorder positions differ";
    }
    cpu->advance(*model, l);  // dense block: both advance through the same fp32 model
    gpu->advance(*model, l);
  }
  const auto ra = cpu->residual(2), rb = gpu->residual(2);
  std::printf("[ quant-gpu ] dense residual stream after %d layers: rel %.2e\n", model->cfg.num_layers, rel_err(rb, ra));
  EXPECT_LE(rel_err(rb, ra), 1e-5);  // fp32 throughout (measured ~1e-7)
}

TEST(GpuQuantBackend, AdvanceMatchesCpu) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  for (const QuantSetup& su : setups()) {
    SCOPED_TRACE(su.name);
    std::mt19937_64 rng(seed);
    auto model = calib_model(seed), dense = calib_model(seed);
    const auto win = windows(4, 64, rng);
    quant::quantize_model(*model, win, su.cfg);  // CPU: the quantized layers and the KV format
    // Without activation or KV rounding nothing can land on the other side of a rounding boundary.
    const bool exact = su.cfg.method == "atom" && su.cfg.atom.a_bits == 16 && su.cfg.kv_bits == 16;
    auto cpu = quant::make_cpu_quant_backend(), ref = quant::make_cpu_quant_backend();
    auto gpu = cuda::make_gpu_quant_backend();
    const auto eval = windows(2, 96, rng);
    cpu->begin(*model, eval);
    gpu->begin(*model, eval);
    ref->begin(*dense, eval);
    for (int l = 0; l < model->cfg.num_layers; ++l) {
      cpu->advance(*model, l);
      gpu->advance(*model, l);
      ref->advance(*dense, l);
      for (int64_t s = 0; s < 2; ++s) {
        const auto rc = cpu->residual(s);
        const double e = rel_err(gpu->residual(s), rc), q = rel_err(rc, ref->residual(s));
        std::printf("[ quant-gpu ] %-34s layer %d window %lld: GPU vs CPU residual rel %.2e (quantization error %.2e)\n",
                    su.name, l, (long long)s, e, q);
        // Bounds: fp32 summation order alone (exact setups): 1e-5 (measured ~1e-7). With activation / KV
        // rounding, a value whose fp32 inputs differ at a rounding boundary lands one level off, and a
        // per-token scale (W8A8's absmax) that moves re-rounds its whole token; the differences then
        // compound through the later blocks. They stay a fraction of the quantization error itself (a wrong
        // scale or layout lands at or above it): <= 0.75x. H200, 2026-12-02 (results §10a), 13 seeds: atom
        // setups <= 0.29x, w8a8-kv8 up to 0.41x in 11 and 0.51x / 0.54x in 2 (block 1: its per-token INT8
        // scales re-round whole tokens); 0.5x, the bound before, failed those two.
        if (exact) EXPECT_LE(e, 1e-5) << "layer " << l << " window " << s;
        else EXPECT_LE(e, 0.75 * q) << "layer " << l << " window " << s;
      }
    }
  }
}

// The whole pipeline on the GPU backend (fp32 forward, and TF32 with --calib-tf32) against the CPU one.
TEST(GpuQuantBackend, QuantizeModelMatchesCpu) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  for (const QuantSetup& su : setups()) {
    SCOPED_TRACE(su.name);
    std::mt19937_64 rng(seed);
    auto ref = calib_model(seed), mc = calib_model(seed);
    const auto win = windows(su.cfg.samples, su.cfg.seqlen, rng);
    const quant::QuantizeReport rc = quant::quantize_model(*mc, win, su.cfg);
    EXPECT_EQ(rc.backend, "cpu");
    const auto toks = random_tokens(96, rng);
    const auto lf = cpu_all_logits(*ref, toks), lc = cpu_all_logits(*mc, toks);
    const double q_err = rel_err(lc, lf);
    for (const bool tf32 : {false, true}) {
      SCOPED_TRACE(tf32 ? "tf32" : "fp32");
      auto mg = calib_model(seed);
      auto gpu = cuda::make_gpu_quant_backend(0, tf32);
      const quant::QuantizeReport rg = quant::quantize_model(*mg, win, su.cfg, nullptr, gpu.get());
      EXPECT_EQ(rg.backend, tf32 ? "cuda-tf32" : "cuda");
      EXPECT_TRUE(rg.stage_seconds.count("hessian"));
      ASSERT_EQ(rg.linears.size(), rc.linears.size());
      double worst = 0;
      for (size_t i = 0; i < rc.linears.size(); ++i) {
        const double a = rc.linears[i].rel_error, b = rg.linears[i].rel_error;
        worst = std::max(worst, std::fabs(a - b) / std::max(a, 1e-12));
        // Per-linear relative output errors within 10% of the CPU's (plus 1e-4 absolute).
        EXPECT_LE(std::fabs(a - b), 0.1 * a + 1e-4) << "layer " << rc.linears[i].layer << " " << rc.linears[i].linear;
      }
      // The reorders: equal up to tied channels in block 0, then they follow the blocks' own inputs.
      int64_t perm_diff = 0;
      for (int l = 0; l < mc->cfg.num_layers; ++l)
        for (int s = 0; s < kNumLinearSlots; ++s) {
          auto* a = dynamic_cast<const quant::AtomLinear*>(mc->layers[size_t(l)].linear[s].get());
          auto* b = dynamic_cast<const quant::AtomLinear*>(mg->layers[size_t(l)].linear[s].get());
          if (!a || !b) continue;
          for (size_t j = 0; j < a->weights().perm.size(); ++j) perm_diff += a->weights().perm[j] != b->weights().perm[j];
        }
      const auto lg = cpu_all_logits(*mg, toks);
      const double d = rel_err(lg, lc), q_err_gpu = rel_err(lg, lf);
      std::printf("[ quant-gpu ] %-34s %s logits: CPU-quantized vs fp32 %.4f, GPU-quantized vs fp32 %.4f, GPU vs CPU "
                  "quantized %.2e; worst per-linear error ratio %.2e; %lld reorder positions differ; GPU stages:",
                  su.name, tf32 ? "tf32" : "fp32", q_err, q_err_gpu, d, worst, (long long)perm_diff);
      for (const auto& [k, v] : rg.stage_seconds) std::printf(" %s %.3fs", k.c_str(), v);
      std::printf("\n");
      // Bounds. Sequential GPTQ amplifies any rounding flip (the later blocks calibrate on different inputs:
      // other reorders, other GPTQ decisions), so the two are different quantizations of equal quality, not
      // the same one: the GPU-quantized model is within 5% of the CPU-quantized one's error (H200,
      // 2026-12-02, fp32: +0.1..+1.0%), and no further from it than the CPU-quantized model is from fp32 (a
      // broken GPU path lands far outside; measured 0.33-0.62x).
      EXPECT_LE(q_err_gpu, 1.05 * q_err + 1e-6);
      EXPECT_LE(d, q_err);
    }
  }
}

TEST(GpuQuantBackend, BadInputThrows) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto gpu = cuda::make_gpu_quant_backend();
  auto model = calib_model(seed);
  EXPECT_THROW(gpu->begin(*model, {}), atom::Error);
  EXPECT_THROW(gpu->begin(*model, {random_tokens(16, rng), random_tokens(15, rng)}), atom::Error);
  {
    std::vector<int32_t> bad = random_tokens(16, rng);
    bad[3] = model->cfg.vocab_size;
    EXPECT_THROW(gpu->begin(*model, {bad}), atom::Error);
  }
  EXPECT_THROW(cuda::make_gpu_quant_backend(1 << 20), atom::Error);
  // A layer kind the GPU forward does not know.
  struct Odd final : Linear {
    Odd(int64_t k, int64_t n) : Linear(k, n) {}
    void forward(const float*, int64_t, float*) const override {}
    std::string kind() const override { return "odd"; }
  };
  gpu->begin(*model, {random_tokens(16, rng)});
  model->layers[0].linear[int(LinearSlot::O)] = std::make_unique<Odd>(model->cfg.hidden_size, model->cfg.hidden_size);
  try {
    gpu->advance(*model, 0);
    ADD_FAILURE() << "expected atom::Error";
  } catch (const atom::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'odd'"), std::string::npos) << e.what();
  }
  // Windows too long for the GPU's memory (the T x T attention scores alone: ~1 TB): a clear message,
  // not a failed allocation.
  std::vector<std::vector<int32_t>> huge(1, std::vector<int32_t>(200000, 1));
  try {
    gpu->begin(*model, huge);
    ADD_FAILURE() << "expected atom::Error";
  } catch (const atom::Error& e) {
    EXPECT_NE(std::string(e.what()).find("lower --samples"), std::string::npos) << e.what();
  }
}

}  // namespace gpu_test
