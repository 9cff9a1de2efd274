// Tensor parallelism on the CPU backend: ranks as threads (ThreadGroup) against the unsharded model.
// Atom / W8A8 models quantized with tp_segments = TP must give bit-identical results at TP = 1 and
// TP = S (integer GEMMs are exact and the all-reduce adds the parts in the segments' order); dense
// fp32 models agree to fp32 rounding (BLAS sums a sliced K in another order) and greedy tokens match.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "atom/core/error.h"
#include "atom/dist/tensor_parallel.h"
#include "atom/model/loader.h"
#include "atom/model/sampler.h"
#include "atom/model/segmented_linear.h"
#include "atom/quant/checkpoint.h"
#include "atom/quant/pipeline.h"
#include "test_util.h"

namespace atom {
namespace {

using dist::TensorParallelModel;
using test::expect_error;
using test::fresh_seed;

ModelConfig tp_config() {
  ModelConfig c;
  c.vocab_size = 96;
  c.hidden_size = 256;
  c.intermediate_size = 384;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 512;
  c.tie_word_embeddings = false;
  return c;
}

// A random model with q_proj scaled down (so attention is not chaotic) and a few large norm channels
// (outliers for Atom's INT8 tail).
std::unique_ptr<LlamaModel> model_for_tp(const ModelConfig& c, uint64_t seed) {
  auto m = make_random_llama(c, seed);
  for (LlamaLayer& L : m->layers) {
    for (float& v : dynamic_cast<DenseLinear&>(*L.linear[int(LinearSlot::Q)]).mutable_weight()) v *= 0.25f;
    for (int i = 0; i < 3; ++i) L.attn_norm[size_t((seed >> (8 * i)) % 256)] *= 8.0f;
  }
  return m;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t n, int vocab) {
  std::uniform_int_distribution<int32_t> d(0, vocab - 1);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = d(rng);
  return t;
}

std::vector<float> hidden_full(const LlamaModel& m, const std::vector<int32_t>& toks) {
  KVCache cache(m.cfg, int64_t(toks.size()));
  std::vector<float> h(toks.size() * size_t(m.cfg.hidden_size), std::nanf(""));
  m.forward(toks.data(), int64_t(toks.size()), cache, h.data());
  return h;
}

std::vector<float> hidden_tp(TensorParallelModel& tp, const std::vector<int32_t>& toks) {
  auto caches = tp.make_caches(int64_t(toks.size()));
  std::vector<float> h(toks.size() * size_t(tp.config().hidden_size), std::nanf(""));
  tp.forward(toks.data(), int64_t(toks.size()), caches, h.data());
  return h;
}

// Greedy continuation: a prompt prefill, then one token at a time (exercises the KV caches).
template <typename Forward, typename Logits>
std::vector<int32_t> greedy(Forward fwd, Logits logits, const std::vector<int32_t>& prompt, int steps, int hidden,
                            int vocab) {
  std::vector<float> h(prompt.size() * size_t(hidden)), lg(static_cast<size_t>(vocab));
  fwd(prompt.data(), int64_t(prompt.size()), h.data());
  std::vector<int32_t> out;
  int32_t next = 0;
  logits(&h[(prompt.size() - 1) * size_t(hidden)], lg.data());
  for (int i = 0; i < steps; ++i) {
    next = argmax(lg.data(), vocab);
    out.push_back(next);
    fwd(&next, 1, h.data());
    logits(h.data(), lg.data());
  }
  return out;
}

TEST(ThreadGroup, AllReduceSumsInRankOrderOnEveryRank) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int n = 3;
  const size_t count = 1000;
  std::vector<std::vector<float>> buf;
  for (int r = 0; r < n; ++r) buf.push_back(test::randn(rng, count, 1.0f + float(r) * 100.0f));
  std::vector<float> want = buf[0];
  for (int r = 1; r < n; ++r)
    for (size_t i = 0; i < count; ++i) want[i] += buf[size_t(r)][i];
  dist::ThreadGroup g(n);
  for (int round = 0; round < 3; ++round) {  // buffers reused across rounds: barriers must separate them
    auto copy = buf;
    g.run([&](int r) { g.rank(r).all_reduce_sum(copy[size_t(r)].data(), int64_t(count)); });
    for (int r = 0; r < n; ++r)
      for (size_t i = 0; i < count; ++i) ASSERT_EQ(copy[size_t(r)][i], want[i]) << "rank " << r << " i " << i;
  }
}

TEST(ThreadGroup, MismatchedCountsAndFailingRanksErrorInsteadOfHanging) {
  dist::ThreadGroup g(2);
  std::vector<float> a(10, 1.0f), b(7, 1.0f);
  EXPECT_THROW(g.run([&](int r) { g.rank(r).all_reduce_sum(r == 0 ? a.data() : b.data(), r == 0 ? 10 : 7); }),
               Error);
  dist::ThreadGroup h(3);
  expect_error([&] {
    h.run([&](int r) {
      if (r == 1) fail("rank 1 broke");
      std::vector<float> x(4, 1.0f);
      h.rank(r).all_reduce_sum(x.data(), 4);
      h.rank(r).barrier();
    });
  }, {"rank 1 broke"});
  EXPECT_THROW(h.run([](int) {}), Error);  // a failed group refuses to run again
}

TEST(TensorParallel, DenseModelMatchesUnshardedAndGreedyIsIdentical) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = tp_config();
  auto full = model_for_tp(c, seed);
  const auto toks = random_tokens(rng, 40, c.vocab_size);
  const auto ref = hidden_full(*full, toks);
  for (int tp : {2}) {
    TensorParallelModel model(*full, tp);
    EXPECT_EQ(model.shard(1).cfg.num_heads, c.num_heads / tp);
    const auto got = hidden_tp(model, toks);
    // fp32 sums over a K split in two: relative error a few ulps of the accumulated magnitude.
    double num = 0, den = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      num += double(got[i] - ref[i]) * (got[i] - ref[i]);
      den += double(ref[i]) * ref[i];
    }
    EXPECT_LT(std::sqrt(num / den), 1e-5) << "tp " << tp;

    KVCache cache(c, 64);
    auto caches = model.make_caches(64);
    const std::vector<int32_t> prompt(toks.begin(), toks.begin() + 12);
    const auto g1 = greedy([&](const int32_t* t, int64_t n, float* h) { full->forward(t, n, cache, h); },
                           [&](const float* h, float* lg) { full->logits(h, 1, lg); }, prompt, 20, c.hidden_size,
                           c.vocab_size);
    const auto g2 = greedy([&](const int32_t* t, int64_t n, float* h) { model.forward(t, n, caches, h); },
                           [&](const float* h, float* lg) { model.logits(h, 1, lg); }, prompt, 20, c.hidden_size,
                           c.vocab_size);
    EXPECT_EQ(g1, g2);
  }
}

// Quantizes with tp_segments = 2 and checks TP = 2 against TP = 1 bit for bit, and the checkpoint.
void check_segmented(const std::string& method, int kv_bits) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = tp_config();
  auto full = model_for_tp(c, seed);
  std::vector<std::vector<int32_t>> windows;
  for (int i = 0; i < 4; ++i) windows.push_back(random_tokens(rng, 48, c.vocab_size));
  quant::QuantConfig qc;
  qc.method = method;
  qc.atom.n_outlier = 32;
  qc.kv_bits = kv_bits;
  qc.tp_segments = 2;
  quant::quantize_model(*full, windows, qc);
  ASSERT_NE(dynamic_cast<const SegmentedLinear*>(&full->layers[0].at(LinearSlot::Down)), nullptr);
  ASSERT_EQ(dynamic_cast<const SegmentedLinear*>(&full->layers[0].at(LinearSlot::Q)), nullptr);

  const auto toks = random_tokens(rng, 33, c.vocab_size);
  const auto ref = hidden_full(*full, toks);
  TensorParallelModel model(*full, 2);
  EXPECT_EQ(model.shard(0).layers[0].at(LinearSlot::O).kind(), method == "atom" ? "atom-w4a4" : "w8a8");
  const auto got = hidden_tp(model, toks);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(got[i], ref[i]) << "element " << i;

  // The segmented layout survives a checkpoint round trip.
  const auto dir = std::filesystem::temp_directory_path() / ("atom_tp_ck_" + std::to_string(seed));
  const auto src = dir / "src";  // the checkpoint copies the source's tokenizer file
  std::filesystem::create_directories(src);
  std::ofstream(src / "tokenizer.json") << "{}";
  quant::save_checkpoint((dir / "ck").string(), *full, qc, {}, src.string());
  auto loaded = quant::load_checkpoint((dir / "ck").string());
  std::filesystem::remove_all(dir);
  EXPECT_EQ(loaded.config.tp_segments, 2);
  const auto back = hidden_full(*loaded.model, toks);
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(back[i], ref[i]) << "element " << i;
}

TEST(TensorParallel, AtomSegmentedTp2IsBitIdenticalToTp1) { check_segmented("atom", 4); }
TEST(TensorParallel, W8A8SegmentedTp2IsBitIdenticalToTp1) { check_segmented("w8a8", 8); }

TEST(TensorParallel, ClearErrorsForShapesThatDoNotSplit) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const ModelConfig c = tp_config();
  auto full = model_for_tp(c, seed);
  expect_error([&] { TensorParallelModel m(*full, 3); }, {"3 ranks", "heads"});
  expect_error([&] { TensorParallelModel m(*full, 0); }, {"1..64"});
  // An Atom model quantized in one piece cannot be split: the message says how to fix it.
  std::vector<std::vector<int32_t>> windows{random_tokens(rng, 32, c.vocab_size)};
  quant::QuantConfig qc;
  qc.atom.n_outlier = 32;
  qc.gptq = false;
  quant::quantize_model(*full, windows, qc);
  expect_error([&] { TensorParallelModel m(*full, 2); }, {"o_proj", "--tp-segments"});
  // Segments that do not divide the heads / outliers are refused at quantization time.
  auto other = model_for_tp(c, seed + 1);
  qc.tp_segments = 3;
  expect_error([&] { quant::quantize_model(*other, windows, qc); }, {"tp segments 3"});
}

}  // namespace
}  // namespace atom
