// The whole model on the GPU (GpuLlamaModel) against the CPU reference LlamaModel, in the three modes,
// on a tiny random Llama (2 layers, hidden 384 = 128 outliers + 2 INT4 groups, FFN 1024 = 128 + 7 groups,
// GQA 6/2 heads of 64) with fresh weights each run:
//   * logits of a 40-token prompt vs the CPU model with the same quantized linears and KV format:
//     ‖Δ‖/‖ref‖ below 1e-2 (fp16), and in w8a8/atom below what quantization itself changes
//     (‖CPU quantized − CPU fp32‖/‖·‖): the GPU keeps linear inputs/outputs and K/V in fp16 where the CPU
//     keeps fp32, so it rounds an activation to the neighbouring INT4/INT8 step now and then; mean NLL
//     within 0.5%;
//   * chunked prefill (steps of 7 tokens) gives the same logits as one step, within 2e-3 relative (fp16) or
//     half of quantization's own error (w8a8/atom: the GEMM configuration differs with the step size, and
//     one flipped INT4 rounding moves these logits by ~0.2x of it), and stays as close to the CPU;
//   * greedy generations of a ragged batch equal the same requests run one at a time.
// Also: a synthetic llama2-7b in atom mode runs a step with finite logits; llama2-70b in fp16 is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "atom/backend/cpu/ops.h"
#include "atom/backend/cuda/gpu_model.h"
#include "atom/core/error.h"
#include "atom/model/loader.h"
#include "atom/quant/pipeline.h"
#include "atom/quant/w8a8_linear.h"
#include "gpu_model_test_util.h"

using namespace gpu_test;

namespace {

class GpuModelModes : public ::testing::TestWithParam<GpuMode> {};

TEST_P(GpuModelModes, LogitsMatchCpuReference) {
  REQUIRE_GPU();
  const GpuMode mode = GetParam();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto cpu = cpu_model(mode, seed);
  auto gpu = GpuLlamaModel::from_cpu(*cpu, small_options());
  ASSERT_EQ(gpu->mode(), mode);
  const int64_t n = 40, V = cpu->cfg.vocab_size;
  const auto toks = random_tokens(n, rng);

  const std::vector<float> ref = cpu_all_logits(*cpu, toks);

  std::vector<int32_t> bt = {0, 1, 2};
  SeqStep s{0, toks.data(), n, 0, bt.data(), 3, true};
  std::vector<float> got(static_cast<size_t>(n * V), NAN);
  gpu->step_all_logits(s, got.data());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_TRUE(std::isfinite(got[i])) << i;
  // How far quantization itself moves the logits (CPU quantized vs CPU fp32): in the quantized modes the
  // GPU/CPU difference (fp16 vs fp32 activations flipping an INT4/INT8 rounding now and then) must stay
  // below that (a wrong reorder, scale or layout lands above it). Measured on the H100: 0.91x (w8a8) and
  // 0.76x (atom) of it on this tiny random model — more than the flip estimate predicts; open item.
  const std::vector<float> dref = cpu_all_logits(*make_random_llama(tiny_config(), seed), toks);
  const double rel = rel_err(got, ref), qerr = rel_err(ref, dref);
  const double tol = mode == GpuMode::Fp16 ? 1e-2 : qerr;
  const double nll_c = mean_nll(ref, toks, V), nll_g = mean_nll(got, toks, V);
  std::printf("%s: logits rel err vs CPU %.3g (tol %.3g; quantization's own %.3g), mean NLL cpu %.5f gpu %.5f\n",
              gpu_mode_name(mode), rel, tol, qerr, nll_c, nll_g);
  EXPECT_LT(rel, tol);
  // Logits are huge here: compare NLL, not exp(NLL). fp16 is held to 0.5%; the quantized modes to 1%: on
  // this random model one flipped INT4 rounding moves the NLL by tenths of a percent (0.63% seen on an
  // H200 with an otherwise passing logit error of 0.79x quantization's own).
  EXPECT_LT(std::fabs(nll_g / nll_c - 1.0), mode == GpuMode::Fp16 ? 0.005 : 0.01);

  // chunked prefill through the paged cache: the same logits
  std::vector<float> chunked(static_cast<size_t>(n * V), NAN);
  for (int64_t p0 = 0; p0 < n; p0 += 7) {
    const int64_t c = std::min<int64_t>(7, n - p0);
    SeqStep sc{0, toks.data() + p0, c, p0, bt.data(), 3, true};
    gpu->step_all_logits(sc, &chunked[size_t(p0 * V)]);
  }
  // fp16: 2e-3. The quantized modes run other GEMM configurations at 7 tokens than at 40 (streaming vs
  // warp-specialized), whose fp32 sums round the fp16 outputs differently; now and then a 1-ulp change flips
  // an INT4 rounding, which moves this random model's logits by a fifth of quantization's own error. Measured
  // on an H200 (results §10a): over 20 atom models, 18 differ by <= 1e-4 and 2 by 0.043 / 0.046 (0.21x /
  // 0.22x quantization's own, the same at IEEE or fast SiLU); w8a8 is bit-identical. A wrong page, position
  // or scale moves the logits by about quantization's own error, so the bound is half of it, and the chunked
  // logits must also stay as close to the CPU as the one-step ones must.
  const double chunk_tol = mode == GpuMode::Fp16 ? 2e-3 : 0.5 * qerr;
  const double chunk_rel = rel_err(chunked, got), chunk_vs_cpu = rel_err(chunked, ref);
  std::printf("%s: chunked vs one-step %.3g (tol %.3g), chunked vs CPU %.3g\n", gpu_mode_name(mode), chunk_rel,
              chunk_tol, chunk_vs_cpu);
  EXPECT_LT(chunk_vs_cpu, tol) << "chunked prefill is further from the CPU than the bound";
  EXPECT_LT(chunk_rel, chunk_tol) << "chunked prefill differs from one-step prefill";

  // The control: the same chunks with an off-by-one position after the first (a position bug: RoPE one step
  // off, and the prefix's last slot read twice) must land outside the bound, or the bound catches nothing.
  std::vector<float> shifted(static_cast<size_t>(n * V), NAN);
  for (int64_t p0 = 0; p0 < n; p0 += 7) {
    const int64_t c = std::min<int64_t>(7, n - p0);
    SeqStep sc{0, toks.data() + p0, c, p0 == 0 ? 0 : p0 + 1, bt.data(), 3, true};
    gpu->step_all_logits(sc, &shifted[size_t(p0 * V)]);
  }
  const double shifted_rel = rel_err(shifted, got);
  std::printf("%s: control (positions off by one) vs one-step %.3g\n", gpu_mode_name(mode), shifted_rel);
  EXPECT_GT(shifted_rel, chunk_tol) << "the chunked-prefill bound does not catch an off-by-one position";
}

// Greedy decoding of several requests: all in one ragged batch (prefill together, then decode
// together) vs each alone. Pages: request r owns pages [r*12, r*12+12).
std::vector<std::vector<int32_t>> greedy(GpuLlamaModel& g, const std::vector<std::vector<int32_t>>& prompts,
                                         int new_tokens, bool batched) {
  const int64_t V = g.config().vocab_size, R = int64_t(prompts.size());
  std::vector<std::vector<int32_t>> bts(static_cast<size_t>(R)), out(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r)
    for (int j = 0; j < 12; ++j) bts[size_t(r)].push_back(int32_t(r * 12 + j));
  auto argmax = [&](const float* l) { return int32_t(std::max_element(l, l + V) - l); };
  auto run = [&](const std::vector<int64_t>& who) {
    std::vector<std::vector<int32_t>> seq(static_cast<size_t>(R));
    for (int64_t r : who) seq[size_t(r)] = prompts[size_t(r)];
    std::vector<int64_t> done(static_cast<size_t>(R), 0);  // tokens already in the cache
    std::vector<float> logits(static_cast<size_t>(int64_t(who.size()) * V));
    for (int step = 0; step <= new_tokens - 1; ++step) {
      std::vector<SeqStep> batch;
      for (int64_t r : who) {
        const auto& s = seq[size_t(r)];
        batch.push_back({r, s.data() + done[size_t(r)], int64_t(s.size()) - done[size_t(r)], done[size_t(r)],
                         bts[size_t(r)].data(), 12, true});
      }
      g.step(batch, logits.data());
      for (size_t i = 0; i < who.size(); ++i) {
        const int64_t r = who[i];
        done[size_t(r)] = int64_t(seq[size_t(r)].size());
        seq[size_t(r)].push_back(argmax(&logits[i * size_t(V)]));
        out[size_t(r)].push_back(seq[size_t(r)].back());
      }
    }
  };
  if (batched) {
    std::vector<int64_t> all;
    for (int64_t r = 0; r < R; ++r) all.push_back(r);
    run(all);
  } else {
    for (int64_t r = 0; r < R; ++r) run({r});
  }
  return out;
}

TEST_P(GpuModelModes, BatchedGreedyEqualsSingleRequests) {
  REQUIRE_GPU();
  const GpuMode mode = GetParam();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto cpu = cpu_model(mode, seed);
  auto gpu = GpuLlamaModel::from_cpu(*cpu, small_options());
  std::vector<std::vector<int32_t>> prompts = {random_tokens(5, rng), random_tokens(33, rng), random_tokens(1, rng),
                                               random_tokens(17, rng)};
  const auto single = greedy(*gpu, prompts, 16, false);
  const auto batch = greedy(*gpu, prompts, 16, true);
  for (size_t r = 0; r < prompts.size(); ++r) EXPECT_EQ(single[r], batch[r]) << "request " << r;
}

INSTANTIATE_TEST_SUITE_P(Modes, GpuModelModes, ::testing::Values(GpuMode::Fp16, GpuMode::W8A8, GpuMode::Atom),
                         [](const auto& info) { return std::string(gpu_mode_name(info.param)); });

TEST(GpuModel, SyntheticShapes) {
  REQUIRE_GPU();
  EXPECT_THROW(GpuLlamaModel::named_shape("llama9-1t"), atom::Error);
  // 129 GiB of fp16 weights: over 0.9 of an 80 GB H100 and of a 141 GB H200 alike; refused before allocating
  EXPECT_THROW(GpuLlamaModel::synthetic("llama2-70b", GpuMode::Fp16, 1, small_options()), atom::Error);
  GpuModelOptions tight = small_options();
  tight.gpu_memory_utilization = 0.02f;  // 7B atom (3.4 GiB) over 2% of any GPU's memory (<= 2.8 GiB on 141 GB)
  EXPECT_THROW(GpuLlamaModel::synthetic("llama2-7b", GpuMode::Atom, 1, tight), atom::Error);
  if (small_only()) return;
  GpuModelOptions o = small_options();
  o.max_blocks_per_seq = 16;
  for (GpuMode mode : {GpuMode::Atom, GpuMode::W8A8}) {
    auto g = GpuLlamaModel::synthetic("llama2-7b", mode, 7, o);
    std::printf("%s\n", g->summary().c_str());
    std::vector<int32_t> a = {1, 2, 3, 4, 5, 6, 7, 8, 9}, b = {42}, bta = {0}, btb = {1};
    std::vector<float> logits(static_cast<size_t>(2 * g->config().vocab_size), NAN);
    g->step({{0, a.data(), 9, 0, bta.data(), 1, true}, {1, b.data(), 1, 0, btb.data(), 1, true}}, logits.data());
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  }
}

// The GPU takes the CPU model's KV format (an atom checkpoint quantized with --kv-bits 16 keeps fp16 KV), and
// refuses a pre-RoPE-K model rather than run another model silently.
TEST(GpuModel, KvFormatFollowsTheModel) {
  REQUIRE_GPU();
  auto cpu = cpu_model(GpuMode::Atom, fresh_seed());
  EXPECT_EQ(GpuLlamaModel::from_cpu(*cpu, small_options())->kv_bits(), 4);
  quant::QuantConfig q;
  q.kv_bits = 16;
  quant::apply_kv_format(*cpu, q);
  EXPECT_EQ(GpuLlamaModel::from_cpu(*cpu, small_options())->kv_bits(), 16);
  GpuModelOptions o = small_options();
  o.kv_bits = 8;  // an explicit override still wins
  EXPECT_EQ(GpuLlamaModel::from_cpu(*cpu, o)->kv_bits(), 8);
  q.kv_bits = 4;
  q.kv_pre_rope = true;
  quant::apply_kv_format(*cpu, q);
  EXPECT_THROW(GpuLlamaModel::from_cpu(*cpu, small_options()), atom::Error);
}

TEST(GpuModel, RejectsBadSteps) {
  REQUIRE_GPU();
  auto cpu = cpu_model(GpuMode::Fp16, 3);
  auto gpu = GpuLlamaModel::from_cpu(*cpu, small_options());
  std::vector<int32_t> t = {1, 2, 600}, bt = {0};
  std::vector<float> logits(512);
  EXPECT_THROW(gpu->step({{0, t.data(), 3, 0, bt.data(), 1, true}}, logits.data()), atom::Error);  // token 600
  t[2] = 3;
  EXPECT_THROW(gpu->step({{0, t.data(), 3, 15, bt.data(), 1, true}}, logits.data()), atom::Error);  // no page
}

}  // namespace
