// The quantization pipeline (src/atom/quant/{calibrate,pipeline}): calibration statistics against
// brute force, the reorder (down_proj's offline reorder leaves the fp32 model's logits unchanged;
// an AtomLinear with perm P equals one with the identity on the column-permuted weight), seeded
// calibration windows, quantize_model end to end on small random models (Atom RTN / GPTQ, W8A8, RTN
// W4A4; ragged groups; KV 4/8/16 bits), and the KV-cache format.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>

#include "atom/core/error.h"
#include "atom/model/loader.h"
#include "atom/model/perplexity.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/gptq.h"
#include "atom/quant/pipeline.h"
#include "atom/quant/quant_backend.h"
#include "atom/quant/quantize.h"
#include "atom/quant/w8a8_linear.h"
#include "quant_test_util.h"
#include "test_util.h"

using namespace atom;
using namespace atom::quant;
using atom::test::fresh_seed;
using atom::test::logits_of;
using atom::test::randn;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

ModelConfig make_config(int hidden, int ffn, int heads, int kv_heads, int head_dim, int layers, int vocab,
                        bool tied) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = ffn;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.max_position_embeddings = 1024;
  c.tie_word_embeddings = tied;
  return c;
}

// hidden 200, FFN 300, 5×40 query heads (q_dim 200), 1 KV head: with O8 G64 the FFN input has
// K_n = 292 = 4·64 + 36 (a ragged last group); hidden/o_proj inputs have 192 = 3·64.
ModelConfig small_config(bool tied = true) { return make_config(200, 300, 5, 1, 40, 2, 128, tied); }
// SmolLM2's attention shape, one layer: with O128 G128 hidden 576 leaves 448 = 3·128 + 64.
ModelConfig smol_like_config() { return make_config(576, 768, 9, 3, 64, 1, 256, false); }

// A random model closer to a trained one than make_random_llama's: a few large input channels
// (some RMSNorm weights scaled up, so q/k/v and gate/up inputs carry the outliers Atom's INT8 tail
// is for), and q_proj scaled down so attention is not a near-argmax of random scores (with unit
// q·k/√d variance of ~16 a random model is chaotic: any perturbation flips whole attention rows).
std::unique_ptr<LlamaModel> random_model(const ModelConfig& c, uint64_t seed, float outlier_scale = 8.0f,
                                         float q_scale = 0.25f) {
  auto m = make_random_llama(c, seed);
  std::mt19937_64 rng(seed ^ 0x5eed);
  std::vector<int32_t> ch(static_cast<size_t>(c.hidden_size));
  std::iota(ch.begin(), ch.end(), 0);
  for (LlamaLayer& L : m->layers) {
    for (std::vector<float>* norm : {&L.attn_norm, &L.ffn_norm}) {
      std::shuffle(ch.begin(), ch.end(), rng);
      for (int i = 0; i < 4; ++i) (*norm)[size_t(ch[size_t(i)])] *= outlier_scale;  // 4 distinct channels
    }
    auto& wq = dynamic_cast<DenseLinear&>(*L.linear[int(LinearSlot::Q)]).mutable_weight();
    for (float& v : wq) v *= q_scale;
  }
  return m;
}

// Token text with structure: a random Markov chain that follows a fixed successor 60% of the time.
std::vector<int32_t> structured_tokens(std::mt19937_64& rng, size_t n, int vocab) {
  std::vector<int32_t> next(static_cast<size_t>(vocab));
  for (auto& x : next) x = int32_t(rng() % uint64_t(vocab));
  std::vector<int32_t> t(n);
  t[0] = int32_t(rng() % uint64_t(vocab));
  std::uniform_real_distribution<double> u(0, 1);
  for (size_t i = 1; i < n; ++i)
    t[i] = u(rng) < 0.6 ? next[size_t(t[i - 1])] : int32_t(rng() % uint64_t(vocab));
  return t;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, double(std::fabs(x)));
  return m;
}

std::vector<int32_t> random_perm(std::mt19937_64& rng, int64_t k) {
  std::vector<int32_t> p(static_cast<size_t>(k));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

bool is_identity(const std::vector<int32_t>& p) {
  for (size_t i = 0; i < p.size(); ++i)
    if (p[i] != int32_t(i)) return false;
  return true;
}

bool is_permutation_of_iota(std::vector<int32_t> p) {
  std::sort(p.begin(), p.end());
  return is_identity(p);
}

// out[i] = w[perm[i]] for the rows of a [n, k] weight.
std::vector<float> permute_rows(const std::vector<float>& w, int64_t k, const std::vector<int32_t>& perm) {
  std::vector<float> out(w.size());
  for (size_t i = 0; i < perm.size(); ++i)
    std::copy_n(&w[size_t(perm[i]) * size_t(k)], size_t(k), &out[i * size_t(k)]);
  return out;
}

const DenseLinear& dense_at(const LlamaLayer& L, LinearSlot s) {
  return dynamic_cast<const DenseLinear&>(L.at(s));
}

// down_proj's reorder as the pipeline does it offline: gate/up output rows and down's input columns
// permuted by the same index.
void reorder_ffn(LlamaModel& m, int l, const std::vector<int32_t>& perm) {
  const int64_t H = m.cfg.hidden_size, F = m.cfg.intermediate_size;
  LlamaLayer& L = m.layers[size_t(l)];
  for (LinearSlot s : {LinearSlot::Gate, LinearSlot::Up})
    L.linear[int(s)] = std::make_unique<DenseLinear>(H, F, permute_rows(dense_at(L, s).weight(), H, perm));
  const auto& wd = dense_at(L, LinearSlot::Down).weight();
  L.linear[int(LinearSlot::Down)] = std::make_unique<DenseLinear>(F, H, permute_columns(wd.data(), H, F, perm));
}

}  // namespace

// ------------------------------------------------------------------------------------- reorder

TEST(QuantPipelineReorder, DownProjOfflineReorderKeepsLogits) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = small_config(/*tied=*/false);
  auto ref = random_model(c, seed);
  auto perm = random_model(c, seed);
  // Layer 0: a random permutation; layer 1: the calibrated one (ascending Σx² of down's input).
  reorder_ffn(*perm, 0, random_perm(rng, c.intermediate_size));
  {
    InputStats st(c.intermediate_size, false);
    ref->observer = [&](int l, LinearSlot s, const float* x, int64_t m, int64_t) {
      if (l == 1 && s == LinearSlot::Down) st.add(x, m);
    };
    logits_of(*ref, structured_tokens(rng, 64, c.vocab_size));
    ref->observer = nullptr;
    const auto p = reorder_by_magnitude(st.sumsq);
    ASSERT_FALSE(is_identity(p));
    reorder_ffn(*perm, 1, p);
  }
  const auto toks = structured_tokens(rng, 48, c.vocab_size);
  const auto a = logits_of(*ref, toks), b = logits_of(*perm, toks);
  // Only the order of down's fp32 sum changes: measured max |Δ| ≤ 2e-6 with max |logit| ~3.
  const double d = atom::test::max_abs_diff(a.data(), b.data(), a.size());
  std::printf("[ pipeline ] down_proj reorder: max |d logit| %.3g (max |logit| %.3g)\n", d, max_abs(a));
  EXPECT_LE(d, 1e-4 * std::max(1.0, max_abs(a))) << "max |d logit| " << d << " of " << max_abs(a);
  EXPECT_GT(max_abs(a), 0.1);
}

TEST(QuantPipelineReorder, AtomLinearPermEqualsIdentityOnPermutedColumns) {
  // What the pipeline relies on for down_proj: AtomLinear(W, P)(x) equals
  // AtomLinear(W[:, P], identity)(x[:, P]) bit for bit (the reordered values are the same).
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  struct Case { int64_t m, n, k; int n_outlier, group, outlier_bits; };
  for (Case cs : {Case{7, 33, 300, 8, 64, 8}, Case{19, 40, 576, 128, 128, 8}, Case{5, 24, 200, 16, 64, 16},
                  Case{3, 17, 130, 0, 0, 8}}) {
    SCOPED_TRACE(cs.k);
    AtomConfig cfg;
    cfg.n_outlier = cs.n_outlier;
    cfg.group = cs.group;
    cfg.outlier_bits = cs.outlier_bits;
    const auto w = randn(rng, size_t(cs.n * cs.k), 0.1f), x = randn(rng, size_t(cs.m * cs.k));
    const auto p = random_perm(rng, cs.k);
    std::vector<int32_t> id(static_cast<size_t>(cs.k));
    std::iota(id.begin(), id.end(), 0);
    const auto w_p = permute_columns(w.data(), cs.n, cs.k, p);
    std::vector<float> x_p(x.size());
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < cs.k; ++j) x_p[size_t(i * cs.k + j)] = x[size_t(i * cs.k + p[size_t(j)])];
    AtomLinear a(w.data(), cs.n, cs.k, p, cfg), b(w_p.data(), cs.n, cs.k, id, cfg);
    std::vector<float> ya(size_t(cs.m * cs.n), kNaN), yb(size_t(cs.m * cs.n), kNaN);
    a.forward(x.data(), cs.m, ya.data());
    b.forward(x_p.data(), cs.m, yb.data());
    EXPECT_TRUE(std::all_of(ya.begin(), ya.end(), [](float v) { return std::isfinite(v); }));
    EXPECT_EQ(ya, yb);
    EXPECT_EQ(a.weights().w_int4, b.weights().w_int4);
    EXPECT_EQ(a.weights().w_scale, b.weights().w_scale);
  }
}

// --------------------------------------------------------------------------------- calibration

TEST(QuantPipelineCalib, InputStatsMatchBruteForce) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  // 37 channels: one 64-wide block of hessian()'s triangle mirror; 150: three, the last ragged
  for (const int64_t k : {int64_t(37), int64_t(150)}) {
    SCOPED_TRACE(k);
    InputStats st(k, true), diag_only(k, false);
    std::vector<float> all;
    for (int64_t m : {5, 17, 1, 0, 30}) {  // uneven chunks, one empty
      auto x = randn(rng, size_t(m * k), 2.0f, 0.3f);
      for (int64_t i = 0; i < m; ++i) x[size_t(i * k + 3)] *= 40.0f;  // a large channel
      st.add(x.data(), m);
      diag_only.add(x.data(), m);
      all.insert(all.end(), x.begin(), x.end());
    }
    const int64_t rows = int64_t(all.size()) / k;
    ASSERT_EQ(st.rows, rows);
    EXPECT_EQ(diag_only.rows, rows);
    EXPECT_TRUE(diag_only.xtx.empty());
    EXPECT_THROW(diag_only.hessian(random_perm(rng, k)), atom::Error);
    std::vector<double> xtx(size_t(k * k), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t a = 0; a < k; ++a)
        for (int64_t b = 0; b < k; ++b) xtx[size_t(a * k + b)] += double(all[size_t(i * k + a)]) * all[size_t(i * k + b)];
    for (int64_t j = 0; j < k; ++j) {
      float amax = 0;
      for (int64_t i = 0; i < rows; ++i) amax = std::max(amax, std::fabs(all[size_t(i * k + j)]));
      EXPECT_NEAR(st.sumsq[size_t(j)], xtx[size_t(j * k + j)], 1e-12 * xtx[size_t(j * k + j)]) << j;
      EXPECT_EQ(st.absmax[size_t(j)], amax) << j;
      EXPECT_EQ(diag_only.sumsq[size_t(j)], st.sumsq[size_t(j)]);
    }
    // H' = 2·XᵀX/rows permuted; XᵀX is accumulated by fp32 SYRK per chunk (≤ 30 rows): 1e-5 relative
    // to the diagonal scale.
    const auto p = random_perm(rng, k);
    const auto h = st.hessian(p);
    double scale = 0;
    for (int64_t j = 0; j < k; ++j) scale = std::max(scale, xtx[size_t(j * k + j)]);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const double want = 2.0 * xtx[size_t(p[size_t(i)] * k + p[size_t(j)])] / double(rows);
        ASSERT_NEAR(h[size_t(i * k + j)], want, 1e-5 * 2.0 * scale / double(rows)) << i << "," << j;
        ASSERT_EQ(h[size_t(i * k + j)], h[size_t(j * k + i)]);  // symmetric
      }
    EXPECT_THROW(st.hessian(std::vector<int32_t>(size_t(k - 1), 0)), atom::Error);
    EXPECT_EQ(st.hessian(p), h);  // the second call reads the mirrored triangle as it is
    const auto more = randn(rng, size_t(k), 1.0f, 0.0f);
    EXPECT_THROW(st.add(more.data(), 1), atom::Error);  // no accumulating into a mirrored XᵀX
  }
}

TEST(QuantPipelineCalib, ReorderByMagnitudePutsLargestChannelsLast) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t k = 300, n_big = 12;
  std::vector<double> ss(static_cast<size_t>(k));
  std::uniform_real_distribution<double> u(0.5, 2.0);
  for (double& v : ss) v = u(rng);
  auto big = random_perm(rng, k);
  big.resize(size_t(n_big));
  for (int64_t i = 0; i < n_big; ++i) ss[size_t(big[size_t(i)])] = 1000.0 + double(i);  // ascending in i
  ss[7] = ss[8] = ss[200] = 0.25;                                            // ties below everything
  if (std::find(big.begin(), big.end(), 7) != big.end() || std::find(big.begin(), big.end(), 8) != big.end() ||
      std::find(big.begin(), big.end(), 200) != big.end())
    GTEST_SKIP() << "a tie channel was drawn as a big one";
  const auto p = reorder_by_magnitude(ss);
  ASSERT_TRUE(is_permutation_of_iota(p));
  for (int64_t j = 1; j < k; ++j) EXPECT_LE(ss[size_t(p[size_t(j - 1)])], ss[size_t(p[size_t(j)])]);
  for (int64_t i = 0; i < n_big; ++i) EXPECT_EQ(p[size_t(k - n_big + i)], big[size_t(i)]);  // largest last
  EXPECT_EQ(p[0], 7);  // ties keep channel order
  EXPECT_EQ(p[1], 8);
  EXPECT_EQ(p[2], 200);
}

TEST(QuantPipelineCalib, SampleWindowsSeededAndChecked) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::vector<int32_t> tokens(1000);
  std::iota(tokens.begin(), tokens.end(), 0);
  const auto a = sample_windows(tokens, 16, 64, seed), b = sample_windows(tokens, 16, 64, seed);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, sample_windows(tokens, 16, 64, seed + 1));
  ASSERT_EQ(a.size(), 16u);
  for (const auto& w : a) {
    ASSERT_EQ(w.size(), 64u);
    EXPECT_GE(w.front(), 0);
    EXPECT_LT(w.back(), 999);  // GPTQ's sampling: start in [0, n - seqlen - 1]
    for (size_t i = 1; i < w.size(); ++i) EXPECT_EQ(w[i], w[i - 1] + 1);  // contiguous text
  }
  // More windows than fit without overlap is allowed; text shorter than a window (+1) is not.
  EXPECT_EQ(sample_windows(tokens, 40, 500, seed).size(), 40u);
  EXPECT_EQ(sample_windows(std::vector<int32_t>(65, 1), 3, 64, seed).size(), 3u);
  EXPECT_THROW(sample_windows(std::vector<int32_t>(64, 1), 1, 64, seed), atom::Error);
  EXPECT_THROW(sample_windows(std::vector<int32_t>(10, 1), 1, 64, seed), atom::Error);
  EXPECT_THROW(sample_windows({}, 1, 64, seed), atom::Error);
  EXPECT_THROW(sample_windows(tokens, 0, 64, seed), atom::Error);
  EXPECT_THROW(sample_windows(tokens, 4, 1, seed), atom::Error);
}

// ------------------------------------------------------------------------------ quantize_model

namespace {

struct RunResult {
  QuantizeReport report;
  double logit_err = 0;   // ||logits_q - logits_fp|| / ||logits_fp|| on held-out tokens
  double ppl_fp = 0, ppl_q = 0;
  double mean_err = 0;    // mean reported per-linear error
};

// Quantizes a fresh copy of the model (seed) with cfg and checks the structural invariants.
RunResult quantize_and_check(const ModelConfig& c, uint64_t seed, const QuantConfig& cfg,
                             const std::vector<std::vector<int32_t>>& windows, const std::vector<int32_t>& eval) {
  auto fp = random_model(c, seed);
  auto q = random_model(c, seed);
  int calls = 0;
  RunResult r;
  r.report = quantize_model(*q, windows, cfg, [&](int done, int total) {
    EXPECT_EQ(done, ++calls);
    EXPECT_EQ(total, c.num_layers);
  });
  EXPECT_EQ(calls, c.num_layers);
  EXPECT_EQ(r.report.calib_tokens, int64_t(windows.size() * windows[0].size()));
  EXPECT_GT(r.report.seconds, 0.0);
  // Every linear replaced by the expected kind; lm_head stays 16-bit.
  const std::string want = cfg.method == "atom" ? "atom-w4a4" : "w8a8";
  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayer& L = q->layers[size_t(l)];
    for (int s = 0; s < kNumLinearSlots; ++s) EXPECT_EQ(L.linear[s]->kind(), want) << l << " " << s;
    if (cfg.method != "atom") continue;
    auto aw = [&](LinearSlot s) -> const AtomWeights& { return dynamic_cast<const AtomLinear&>(L.at(s)).weights(); };
    // q/k/v share one index, gate/up another; down's is the identity (gate/up rows carry it).
    EXPECT_EQ(aw(LinearSlot::Q).perm, aw(LinearSlot::K).perm);
    EXPECT_EQ(aw(LinearSlot::Q).perm, aw(LinearSlot::V).perm);
    EXPECT_EQ(aw(LinearSlot::Gate).perm, aw(LinearSlot::Up).perm);
    EXPECT_TRUE(is_identity(aw(LinearSlot::Down).perm));
    for (int s = 0; s < kNumLinearSlots; ++s) {
      const AtomWeights& w = aw(LinearSlot(s));
      EXPECT_TRUE(is_permutation_of_iota(w.perm));
      EXPECT_EQ(w.config.n_outlier, cfg.atom.n_outlier);
      EXPECT_EQ(w.config.group, cfg.atom.group);
    }
    if (cfg.atom.n_outlier > 0) {
      EXPECT_FALSE(is_identity(aw(LinearSlot::Q).perm));
    }
  }
  if (q->lm_head) {
    EXPECT_EQ(q->lm_head->kind(), "dense");
  }
  EXPECT_EQ(bool(q->kv_store_hook), cfg.kv_bits != 16);
  if (cfg.kv_bits != 16) {
    EXPECT_EQ(q->kv_hook_pre_rope, cfg.kv_pre_rope);
  }
  // The 16-bit parts hold fp16 values (what the checkpoint stores).
  for (size_t i = 0; i < q->embed.size(); i += 97) EXPECT_EQ(q->embed[i], fp16_round(fp->embed[i]));
  // The report: 7 linears per layer in slot order, finite errors in (0, 1).
  EXPECT_EQ(r.report.linears.size(), size_t(kNumLinearSlots * c.num_layers));
  for (size_t i = 0; i < r.report.linears.size(); ++i) {
    const LinearReport& lr = r.report.linears[i];
    EXPECT_EQ(lr.layer, int(i) / kNumLinearSlots);
    EXPECT_EQ(lr.linear, linear_slot_name(LinearSlot(int(i) % kNumLinearSlots)));
    EXPECT_TRUE(std::isfinite(lr.rel_error) && lr.rel_error > 0 && lr.rel_error < 1)
        << lr.layer << " " << lr.linear << " " << lr.rel_error;
    if (cfg.method == "atom") {
      EXPECT_EQ(lr.w_clip, cfg.atom.w_clip);
    }
    r.mean_err += lr.rel_error / double(r.report.linears.size());
  }
  const auto a = logits_of(*fp, eval), b = logits_of(*q, eval);
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](float v) { return std::isfinite(v); }));
  r.logit_err = rel_l2(b, a);
  const int ctx = int(eval.size()) / 2;
  r.ppl_fp = evaluate_perplexity(*fp, eval, ctx, 0, false).ppl;
  r.ppl_q = evaluate_perplexity(*q, eval, ctx, 0, false).ppl;
  return r;
}

QuantConfig atom_config(int n_outlier, int group, bool gptq, int kv_bits) {
  QuantConfig c;
  c.method = "atom";
  c.atom.n_outlier = n_outlier;
  c.atom.group = group;
  c.gptq = gptq;
  c.kv_bits = kv_bits;
  return c;
}

}  // namespace

TEST(QuantPipeline, EndToEndSmallRaggedModel) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = small_config(/*tied=*/false);
  const auto text = structured_tokens(rng, 4000, c.vocab_size);
  const auto windows = sample_windows(text, 8, 64, seed);
  const auto eval = structured_tokens(rng, 128, c.vocab_size);

  struct Run { const char* name; QuantConfig cfg; double max_logit_err, max_log_ppl; };
  QuantConfig w8a8;
  w8a8.method = "w8a8";
  w8a8.gptq = false;
  w8a8.kv_bits = 8;
  QuantConfig rtn_w4a4 = atom_config(0, 0, false, 16);  // the paper's RTN baseline
  rtn_w4a4.atom.w_clip = rtn_w4a4.atom.a_clip = 1.0f;
  QuantConfig pre_rope = atom_config(8, 64, true, 4);
  pre_rope.kv_pre_rope = true;
  // Bounds on ||Δlogits|| / ||logits|| (held-out tokens) and on |log(ppl_q / ppl_fp)|, measured over
  // 60 seeds, with ~1.5× headroom: Atom W4A4 0.21–0.29 (two layers amplify the 0.08–0.11 per-linear
  // error: the MLP output, fed by the outlier channels, dominates the residual stream), |Δlog ppl|
  // ≤ 0.057; W8A8 0.024–0.030, ≤ 0.004; RTN W4A4 (no outliers, no groups, no clip) 0.58–0.70, ≤ 0.14.
  std::vector<Run> runs = {{"atom gptq kv4", atom_config(8, 64, true, 4), 0.4, 0.1},
                           {"atom rtn kv4", atom_config(8, 64, false, 4), 0.4, 0.1},
                           {"atom gptq kv16", atom_config(8, 64, true, 16), 0.4, 0.1},
                           {"atom gptq kv4 pre-rope", pre_rope, 0.4, 0.1},
                           {"atom rtn kv8", atom_config(8, 64, false, 8), 0.4, 0.1},
                           {"w8a8 kv8", w8a8, 0.045, 0.008},
                           {"rtn w4a4 kv16", rtn_w4a4, 1.0, 0.25}};
  std::vector<RunResult> res;
  for (const Run& run : runs) {
    SCOPED_TRACE(run.name);
    res.push_back(quantize_and_check(c, seed, run.cfg, windows, eval));
    const RunResult& r = res.back();
    std::printf("[ pipeline ] %-24s mean linear err %.4f  logit rel err %.4f  ppl %.3f -> %.3f\n", run.name,
                r.mean_err, r.logit_err, r.ppl_fp, r.ppl_q);
    EXPECT_LT(r.logit_err, run.max_logit_err);
    EXPECT_GT(r.logit_err, 0.0);
    EXPECT_LT(std::fabs(std::log(r.ppl_q / r.ppl_fp)), run.max_log_ppl);
  }
  // GPTQ vs RTN on the same model, calibration and KV format: lower mean reported error (60 seeds:
  // 0.080–0.089 vs 0.101–0.109; GPTQ/RTN ≤ 0.82 on every seed).
  EXPECT_LT(res[0].mean_err, 0.95 * res[1].mean_err);
  // W8A8 is far more accurate than any W4A4 (logit error ratio ≥ 8.4 measured); Atom (outliers,
  // groups, clip) beats plain RTN W4A4 (ratios ≥ 2.5 on logits, ≥ 3.4 on the mean linear error).
  EXPECT_LT(res[5].logit_err * 4, res[0].logit_err);
  EXPECT_LT(res[2].logit_err * 1.5, res[6].logit_err);
  EXPECT_LT(res[2].mean_err * 2, res[6].mean_err);
}

TEST(QuantPipeline, EndToEndSmolLM2Shape) {
  // hidden 576 with O128 G128 (448 = 3·128 + 64 normal channels), 9/3 heads of 64, one layer.
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = smol_like_config();
  const auto text = structured_tokens(rng, 3000, c.vocab_size);
  const auto windows = sample_windows(text, 6, 128, seed);
  const auto eval = structured_tokens(rng, 128, c.vocab_size);
  const RunResult gptq = quantize_and_check(c, seed, atom_config(128, 128, true, 4), windows, eval);
  const RunResult rtn = quantize_and_check(c, seed, atom_config(128, 128, false, 4), windows, eval);
  QuantConfig w8a8;
  w8a8.method = "w8a8";
  w8a8.gptq = false;
  w8a8.kv_bits = 8;
  const RunResult w8 = quantize_and_check(c, seed, w8a8, windows, eval);
  for (auto [name, r] : {std::pair{"atom gptq", &gptq}, std::pair{"atom rtn", &rtn}, std::pair{"w8a8", &w8}})
    std::printf("[ pipeline ] 576-wide %-10s mean linear err %.4f  logit rel err %.4f  ppl %.3f -> %.3f\n", name,
                r->mean_err, r->logit_err, r->ppl_fp, r->ppl_q);
  // Measured over 60 seeds: logit rel err GPTQ 0.142–0.164, RTN 0.156–0.167, W8A8 0.017–0.019;
  // |Δlog ppl| ≤ 0.041 / 0.047 / 0.006; mean linear error GPTQ/RTN ≤ 0.77 on every seed.
  EXPECT_LT(gptq.logit_err, 0.25);
  EXPECT_LT(rtn.logit_err, 0.25);
  EXPECT_LT(w8.logit_err, 0.03);
  for (const RunResult* r : {&gptq, &rtn}) EXPECT_LT(std::fabs(std::log(r->ppl_q / r->ppl_fp)), 0.1);
  EXPECT_LT(std::fabs(std::log(w8.ppl_q / w8.ppl_fp)), 0.012);
  EXPECT_LT(gptq.mean_err, 0.95 * rtn.mean_err);
}

// The backend seam (quant_backend.h): a backend that forwards to the CPU one and counts its calls gets
// every calibration pass and GPTQ solve, and the result is bit for bit the default (CPU) one.
TEST(QuantPipeline, RunsItsHeavyStepsOnTheGivenBackend) {
  struct Counting final : QuantBackend {
    std::unique_ptr<QuantBackend> cpu = make_cpu_quant_backend();
    int begins = 0, stats = 0, hessians = 0, advances = 0, solves = 0;
    std::string name() const override { return "counting"; }
    void begin(const LlamaModel& m, const std::vector<std::vector<int32_t>>& w) override { ++begins; cpu->begin(m, w); }
    BlockStats block_stats(LlamaModel& m, int l, bool h) override {
      ++stats;
      hessians += h;
      return cpu->block_stats(m, l, h);
    }
    void advance(const LlamaModel& m, int l) override { ++advances; cpu->advance(m, l); }
    GptqResult gptq(const float* w, int64_t n, int64_t k, const double* h, std::vector<int32_t> p,
                    const AtomConfig& c) override {
      ++solves;
      return cpu->gptq(w, n, k, h, std::move(p), c);
    }
    std::vector<float> residual(int64_t s) const override { return cpu->residual(s); }
    std::map<std::string, double> extra_timings() const override { return {{"counted", 1.0}}; }
  };
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = small_config(false);
  QuantConfig cfg;
  cfg.atom.group = 64;
  cfg.atom.n_outlier = 8;
  const std::vector<std::vector<int32_t>> win = {structured_tokens(rng, 40, c.vocab_size),
                                                 structured_tokens(rng, 40, c.vocab_size)};
  auto a = random_model(c, seed), b = random_model(c, seed);
  Counting be;
  const QuantizeReport ra = quantize_model(*a, win, cfg, nullptr, &be);
  const QuantizeReport rb = quantize_model(*b, win, cfg);
  EXPECT_EQ(be.begins, 1);
  EXPECT_EQ(be.stats, c.num_layers);
  EXPECT_EQ(be.hessians, c.num_layers);
  EXPECT_EQ(be.advances, c.num_layers);
  EXPECT_EQ(be.solves, kNumLinearSlots * c.num_layers);
  EXPECT_EQ(ra.backend, "counting");
  EXPECT_EQ(rb.backend, "cpu");
  for (const char* k : {"embed", "pass1", "pass2", "gptq", "host", "counted"}) EXPECT_TRUE(ra.stage_seconds.count(k)) << k;
  ASSERT_EQ(ra.linears.size(), rb.linears.size());
  for (size_t i = 0; i < ra.linears.size(); ++i) EXPECT_EQ(ra.linears[i].rel_error, rb.linears[i].rel_error) << i;
  const auto eval = structured_tokens(rng, 48, c.vocab_size);
  EXPECT_EQ(logits_of(*a, eval), logits_of(*b, eval));
}

TEST(QuantPipeline, Fp16MethodOnlyRoundsTo16Bits) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = small_config(false);
  auto fp = random_model(c, seed), q = random_model(c, seed);
  QuantConfig cfg;
  cfg.method = "fp16";
  const auto rep = quantize_model(*q, {structured_tokens(rng, 32, c.vocab_size)}, cfg);
  EXPECT_TRUE(rep.linears.empty());
  EXPECT_FALSE(q->kv_store_hook);
  for (const LlamaLayer& L : q->layers)
    for (const auto& lin : L.linear) {
      ASSERT_EQ(lin->kind(), "dense");
      for (float v : dynamic_cast<const DenseLinear&>(*lin).weight()) ASSERT_EQ(v, fp16_round(v));
    }
  const auto eval = structured_tokens(rng, 64, c.vocab_size);
  const double e = rel_l2(logits_of(*q, eval), logits_of(*fp, eval));
  EXPECT_LT(e, 2e-3);  // fp16 weights: measured ~3e-4
  EXPECT_GT(e, 0.0);
}

TEST(QuantPipeline, RejectsBadInputs) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  const ModelConfig c = small_config();
  const std::vector<std::vector<int32_t>> win = {std::vector<int32_t>(16, 3)};
  auto m = random_model(c, seed);
  QuantConfig cfg = atom_config(8, 64, false, 4);
  EXPECT_THROW(quantize_model(*m, {}, cfg), atom::Error);
  EXPECT_THROW(quantize_model(*m, {std::vector<int32_t>(16, 3), std::vector<int32_t>(15, 3)}, cfg), atom::Error);
  QuantConfig bad = cfg;
  bad.kv_bits = 5;
  EXPECT_THROW(quantize_model(*m, win, bad), atom::Error);
  bad = cfg;
  bad.method = "int3";
  EXPECT_THROW(quantize_model(*m, win, bad), atom::Error);
  bad = cfg;
  bad.atom.n_outlier = 200;  // = hidden: no normal channels left
  EXPECT_THROW(quantize_model(*random_model(c, seed), win, bad), atom::Error);
  EXPECT_THROW(quantize_model(*random_model(c, seed), {std::vector<int32_t>(16, c.vocab_size)}, cfg), atom::Error);
  // Quantizing twice is refused.
  quantize_model(*m, win, cfg);
  EXPECT_THROW(quantize_model(*m, win, cfg), atom::Error);
}

// ----------------------------------------------------------------------------------- KV format

TEST(QuantPipelineKv, FormatChangesLogitsBoundedly) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = small_config();
  auto m = random_model(c, seed);
  const auto toks = structured_tokens(rng, 96, c.vocab_size);
  const auto ref = logits_of(*m, toks);
  QuantConfig cfg;
  cfg.kv_bits = 16;
  apply_kv_format(*m, cfg);
  EXPECT_FALSE(m->kv_store_hook);
  EXPECT_EQ(logits_of(*m, toks), ref);  // bit-identical
  double err[2][2] = {};                // [bits 4, 8][post, pre]
  for (int b = 0; b < 2; ++b)
    for (int pre = 0; pre < 2; ++pre) {
      cfg.kv_bits = b == 0 ? 4 : 8;
      cfg.kv_pre_rope = pre == 1;
      apply_kv_format(*m, cfg);
      ASSERT_TRUE(m->kv_store_hook);
      EXPECT_EQ(m->kv_hook_pre_rope, pre == 1);
      const auto lg = logits_of(*m, toks);
      EXPECT_TRUE(std::all_of(lg.begin(), lg.end(), [](float v) { return std::isfinite(v); }));
      err[b][pre] = rel_l2(lg, ref);
    }
  // Pre- vs post-RoPE K quantization: equally accurate on these random models (INT4 pre/post ratio
  // 0.94–1.08, mean 1.01 over 60 seeds); on a trained model, measure it (docs/results.md).
  std::printf("[ pipeline ] KV logit rel err: int4 post-RoPE %.5f pre-RoPE %.5f; int8 post %.6f pre %.6f\n",
              err[0][0], err[0][1], err[1][0], err[1][1]);
  for (int pre = 0; pre < 2; ++pre) {
    EXPECT_GT(err[0][pre], 0.0);
    EXPECT_LT(err[0][pre], 0.11);                  // INT4 KV alone: measured 0.040–0.072 over 60 seeds
    EXPECT_GT(err[1][pre], 0.0);
    EXPECT_LT(err[1][pre] * 5.0, err[0][pre]);     // INT8 (≤ 0.0043; INT4/INT8 ≥ 13 measured)
  }
  // method fp16 never quantizes the KV cache; 16 bits removes the hook again.
  cfg.method = "fp16";
  cfg.kv_bits = 4;
  apply_kv_format(*m, cfg);
  EXPECT_FALSE(m->kv_store_hook);
  EXPECT_EQ(logits_of(*m, toks), ref);
}
