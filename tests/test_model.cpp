// CPU reference model: operators against naive double-precision formulas, incremental decoding
// against one-shot prefill, sampling statistics, GGUF q/k permutation, perplexity bookkeeping.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"
#include "atom/model/loader.h"
#include "atom/model/perplexity.h"
#include "atom/model/rope.h"
#include "atom/model/sampler.h"
#include "test_util.h"

using namespace atom;
using atom::test::fresh_seed;
using atom::test::randn;

namespace {

ModelConfig tiny_config(int heads = 4, int kv_heads = 2) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_layers = 2;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = 16;
  c.max_position_embeddings = 512;
  c.rope_theta = 10000.0f;
  c.tie_word_embeddings = true;
  return c;
}

// Naive causal GQA attention in double.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, int64_t m, int64_t pos0, int nh, int nkv, int hd) {
  std::vector<double> out(size_t(m * nh * hd));
  for (int64_t i = 0; i < m; ++i)
    for (int h = 0; h < nh; ++h) {
      const int kvh = h / (nh / nkv);
      const int64_t n = pos0 + i + 1;
      std::vector<double> s(static_cast<size_t>(n));
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        double d = 0;
        for (int t = 0; t < hd; ++t) d += double(q[size_t((i * nh + h) * hd + t)]) * k[size_t((j * nkv + kvh) * hd + t)];
        s[size_t(j)] = d / std::sqrt(double(hd));
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int t = 0; t < hd; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < n; ++j) acc += s[size_t(j)] / sum * v[size_t((j * nkv + kvh) * hd + t)];
        out[size_t((i * nh + h) * hd + t)] = acc;
      }
    }
  return out;
}

}  // namespace

TEST(CpuOps, AttentionMatchesNaiveGqaAndMha) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  struct Case { int64_t m, pos0; int nh, nkv, hd; };
  for (Case cs : {Case{1, 0, 4, 4, 64}, Case{7, 0, 9, 3, 64}, Case{300, 5, 4, 1, 32}, Case{1, 130, 8, 2, 128},
                  Case{129, 129, 2, 2, 16}}) {
    const int64_t total = cs.pos0 + cs.m;
    auto q = randn(rng, size_t(cs.m * cs.nh * cs.hd));
    auto k = randn(rng, size_t(total * cs.nkv * cs.hd));
    auto v = randn(rng, size_t(total * cs.nkv * cs.hd));
    std::vector<float> out(q.size(), NAN);  // poisoned
    cpu::attention_causal(q.data(), k.data(), v.data(), out.data(), cs.m, cs.pos0, cs.nh, cs.nkv, cs.hd,
                          int64_t(cs.nkv) * cs.hd);
    auto ref = naive_attention(q, k, v, cs.m, cs.pos0, cs.nh, cs.nkv, cs.hd);
    // fp32 accumulation over <= 435 keys of unit-variance data: relative error far below 1e-5.
    EXPECT_LT(atom::test::rel_l2(out, ref), 1e-5) << "m=" << cs.m << " pos0=" << cs.pos0 << " nh=" << cs.nh;
  }
}

TEST(CpuOps, RmsNormMatchesFormula) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t m = 5, n = 576;
  auto x = randn(rng, size_t(m * n), 3.0f);
  auto w = randn(rng, size_t(n), 0.2f, 1.0f);
  std::vector<float> y(x.size(), NAN);
  cpu::rmsnorm(x.data(), w.data(), y.data(), m, n, 1e-5f);
  for (int64_t i = 0; i < m; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < n; ++j) ss += double(x[size_t(i * n + j)]) * x[size_t(i * n + j)];
    const double r = 1.0 / std::sqrt(ss / double(n) + 1e-5);
    for (int64_t j = 0; j < n; ++j)
      EXPECT_NEAR(y[size_t(i * n + j)], w[size_t(j)] * x[size_t(i * n + j)] * r, 1e-5);
  }
}

TEST(Rope, RotationMatchesComplexFormulaAndKeepsNorm) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  ModelConfig c = tiny_config();
  c.head_dim = 64;
  auto inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(), 32u);
  const int pos = int(rng() % 5000);
  auto x = randn(rng, 2 * 64);
  auto y = x;
  rope_apply(y.data(), 2, 64, inv.data(), pos);
  for (int h = 0; h < 2; ++h)
    for (int i = 0; i < 32; ++i) {
      const double theta = double(pos) * std::pow(10000.0, -2.0 * i / 64.0);
      const double a = x[size_t(h * 64 + i)], b = x[size_t(h * 64 + i + 32)];
      // Angles up to 5000 rad in fp32 lose ~5e-4 absolute; that is what transformers computes too.
      EXPECT_NEAR(y[size_t(h * 64 + i)], a * std::cos(theta) - b * std::sin(theta), 2e-3);
      EXPECT_NEAR(y[size_t(h * 64 + i + 32)], b * std::cos(theta) + a * std::sin(theta), 2e-3);
    }
}

TEST(Rope, Llama3ScalingBands) {
  ModelConfig c = tiny_config();
  c.head_dim = 128;
  c.rope_theta = 500000.0f;
  auto plain = rope_inv_freq(c);
  c.rope_scaling.type = RopeScaling::Type::Llama3;
  c.rope_scaling.factor = 8.0f;
  c.rope_scaling.low_freq_factor = 1.0f;
  c.rope_scaling.high_freq_factor = 4.0f;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto scaled = rope_inv_freq(c);
  for (size_t i = 0; i < plain.size(); ++i) {
    const double wavelen = 2 * M_PI / plain[i];
    if (wavelen < 8192.0 / 4) EXPECT_FLOAT_EQ(scaled[i], plain[i]);          // high frequencies kept
    else if (wavelen > 8192.0) EXPECT_FLOAT_EQ(scaled[i], plain[i] / 8.0f);  // low ones slowed 8x
    else { EXPECT_LT(scaled[i], plain[i]); EXPECT_GT(scaled[i], plain[i] / 8.0f); }
  }
}

TEST(Llama, IncrementalDecodeEqualsPrefill) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  for (auto [nh, nkv] : {std::pair{4, 2}, std::pair{4, 4}, std::pair{6, 1}}) {
    auto model = make_random_llama(tiny_config(nh, nkv), seed);
    std::mt19937_64 rng(seed + 1);
    std::vector<int32_t> toks(40);
    for (auto& t : toks) t = int32_t(rng() % 97);
    const int64_t H = 64, V = 97, n = int64_t(toks.size());
    KVCache a(model->cfg, n), b(model->cfg, n);
    std::vector<float> ha(size_t(n * H)), la(size_t(n * V));
    model->forward(toks.data(), n, a, ha.data());
    model->logits(ha.data(), n, la.data());
    // Same tokens in three uneven chunks: 1, 16, rest.
    std::vector<float> hb(size_t(n * H)), lb(size_t(n * V));
    model->forward(toks.data(), 1, b, hb.data());
    model->forward(toks.data() + 1, 16, b, hb.data() + H);
    model->forward(toks.data() + 17, n - 17, b, hb.data() + 17 * H);
    model->logits(hb.data(), n, lb.data());
    EXPECT_LT(atom::test::max_abs_diff(la.data(), lb.data(), la.size()), 1e-4) << nh << "/" << nkv;
    EXPECT_EQ(a.length(), n);
  }
}

TEST(Llama, ForwardRejectsBadTokensAndOverflow) {
  auto model = make_random_llama(tiny_config(), fresh_seed());
  KVCache cache(model->cfg, 4);
  std::vector<float> h(64 * 8);
  int32_t bad = 97;
  EXPECT_THROW(model->forward(&bad, 1, cache, h.data()), atom::Error);
  std::vector<int32_t> five = {1, 2, 3, 4, 5};
  EXPECT_THROW(model->forward(five.data(), 5, cache, h.data()), atom::Error);
}

TEST(Loader, GgufQkUnpermuteInvertsLlamaCppPermute) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int n_head = 3, hd = 8, in = 5;
  auto hf = randn(rng, size_t(n_head * hd * in));
  // llama.cpp convert: w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(...)
  std::vector<float> gguf(hf.size());
  for (int h = 0; h < n_head; ++h)
    for (int two = 0; two < 2; ++two)
      for (int i = 0; i < hd / 2; ++i)
        for (int c = 0; c < in; ++c)
          gguf[size_t(((h * (hd / 2) + i) * 2 + two) * in + c)] = hf[size_t(((h * 2 + two) * (hd / 2) + i) * in + c)];
  unpermute_qk_rows(gguf, n_head, in);
  EXPECT_EQ(gguf, hf);
}

TEST(Sampler, GreedyTopKAndSeeds) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto logits = randn(rng, 1000, 2.0f);
  const int32_t best = argmax(logits.data(), 1000);
  Sampler greedy({0.0f, 0, 1.0f, 1});
  EXPECT_EQ(greedy.sample(logits.data(), 1000), best);
  Sampler k1({1.0f, 1, 1.0f, 7});
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.sample(logits.data(), 1000), best);
  Sampler s1({0.8f, 50, 0.9f, 42}), s2({0.8f, 50, 0.9f, 42});
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s1.sample(logits.data(), 1000), s2.sample(logits.data(), 1000));
  EXPECT_THROW(Sampler({-1.0f, 0, 1.0f, 0}), atom::Error);
  EXPECT_THROW(Sampler({1.0f, 0, 0.0f, 0}), atom::Error);
}

TEST(Sampler, FrequenciesFollowSoftmaxAndTopP) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  const std::vector<float> logits = {2.0f, 1.0f, 0.5f, -1.0f, -3.0f};
  std::vector<double> p(5);
  double z = 0;
  for (size_t i = 0; i < 5; ++i) z += p[i] = std::exp(double(logits[i]));
  for (double& x : p) x /= z;
  Sampler s({1.0f, 0, 1.0f, seed});
  const int draws = 40000;
  std::vector<int> count(5);
  for (int i = 0; i < draws; ++i) ++count[size_t(s.sample(logits.data(), 5))];
  for (size_t i = 0; i < 5; ++i) {
    const double sd = std::sqrt(p[i] * (1 - p[i]) / draws);
    EXPECT_NEAR(double(count[i]) / draws, p[i], 5 * sd + 1e-4) << i;  // 5 sigma
  }
  // top_p = 0.8: p0 + p1 = 0.84 >= 0.8, so only tokens 0 and 1 may appear.
  Sampler tp({1.0f, 0, 0.8f, seed + 1});
  for (int i = 0; i < 2000; ++i) EXPECT_LE(tp.sample(logits.data(), 5), 1);
}

TEST(Perplexity, MatchesDirectNllComputation) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  auto model = make_random_llama(tiny_config(), seed);
  std::mt19937_64 rng(seed);
  const int ctx = 24;
  std::vector<int32_t> toks(ctx * 3 + 5);  // 3 windows + a dropped tail
  for (auto& t : toks) t = int32_t(rng() % 97);
  PerplexityResult r = evaluate_perplexity(*model, toks, ctx, 0, false);
  EXPECT_EQ(r.windows, 3);
  EXPECT_EQ(r.predicted_tokens, 3 * (ctx - 1));
  double nll = 0;
  for (int w = 0; w < 3; ++w) {
    KVCache cache(model->cfg, ctx);
    std::vector<float> h(size_t(ctx * 64)), lg(size_t(ctx * 97));
    model->forward(&toks[size_t(w * ctx)], ctx, cache, h.data());
    model->logits(h.data(), ctx, lg.data());
    for (int i = 0; i + 1 < ctx; ++i) {
      double z = 0;
      for (int j = 0; j < 97; ++j) z += std::exp(double(lg[size_t(i * 97 + j)]));
      nll += std::log(z) - lg[size_t(i * 97 + toks[size_t(w * ctx + i + 1)])];
    }
  }
  EXPECT_NEAR(r.ppl, std::exp(nll / (3 * (ctx - 1))), 1e-6 * r.ppl);
  EXPECT_EQ(evaluate_perplexity(*model, toks, ctx, 2, false).windows, 2);
  EXPECT_THROW(evaluate_perplexity(*model, std::vector<int32_t>(10, 1), ctx, 0, false), atom::Error);
}
