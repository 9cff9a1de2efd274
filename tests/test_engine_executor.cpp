// The CPU executor against the model run directly (ragged batches, logits in batch order,
// KV growing with the block table), its contract checks, the executor factory, and the
// benchmark workloads.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "atom/engine/cpu_executor.h"
#include "atom/engine/workload.h"
#include "engine_test_util.h"
#include "test_util.h"

namespace atom::engine {
namespace {

using test::expect_error;
using test::fresh_seed;

// Logits of the last token after running `tokens` through a fresh cache.
std::vector<float> direct_logits(const LlamaModel& m, const std::vector<int32_t>& tokens) {
  KVCache cache(m.cfg, int64_t(tokens.size()));
  std::vector<float> hidden(tokens.size() * size_t(m.cfg.hidden_size)), logits(size_t(m.cfg.vocab_size));
  m.forward(tokens.data(), int64_t(tokens.size()), cache, hidden.data());
  m.logits(&hidden[(tokens.size() - 1) * size_t(m.cfg.hidden_size)], 1, logits.data());
  return logits;
}

TEST(CpuExecutor, RaggedBatchesMatchTheModelRunAlone) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = test::tiny_model(seed);
  CpuExecutor ex(model, /*page_size=*/4, /*num_pages=*/64);
  EXPECT_EQ(ex.name(), "cpu-fp32");
  const int64_t V = model->cfg.vocab_size;
  const std::vector<int32_t> a = test::random_prompt(rng, 11), b = test::random_prompt(rng, 6);
  const std::vector<int32_t> pages_a = {5, 9, 2}, pages_b = {7, 1};
  // Iteration 1: a's first 7 tokens (no logits), b whole (logits).
  std::vector<float> logits(size_t(2 * V), NAN);
  ex.step({{1, a.data(), 7, 0, pages_a.data(), 2, false}, {2, b.data(), 6, 0, pages_b.data(), 2, true}},
          logits.data());
  EXPECT_LT(test::max_abs_diff(logits.data(), direct_logits(*model, b).data(), size_t(V)), 1e-4);
  // Iteration 2: a's last 4 tokens (its table grew to 3 pages) and b decoding one token.
  const int32_t next_b = 42;
  ex.step({{1, a.data() + 7, 4, 7, pages_a.data(), 3, true}, {2, &next_b, 1, 6, pages_b.data(), 2, true}},
          logits.data());
  std::vector<int32_t> b2 = b;
  b2.push_back(next_b);
  EXPECT_LT(test::max_abs_diff(logits.data(), direct_logits(*model, a).data(), size_t(V)), 1e-4);
  EXPECT_LT(test::max_abs_diff(logits.data() + V, direct_logits(*model, b2).data(), size_t(V)), 1e-4);
  EXPECT_EQ(ex.num_live_sequences(), 2);
  ex.release(1);
  ex.release(2);
  EXPECT_EQ(ex.num_live_sequences(), 0);
}

TEST(CpuExecutor, RejectsStepsThatBreakTheContract) {
  auto model = test::tiny_model(fresh_seed());
  CpuExecutor ex(model, 4, 8);
  const std::vector<int32_t> toks = {65, 66, 67, 68, 69}, pages = {0, 1};
  float logits[1024];
  expect_error([&] { ex.step({{1, toks.data(), 5, 0, pages.data(), 1, true}}, logits); }, {"1 pages for 5 positions"});
  expect_error([&] { ex.step({{1, toks.data(), 2, 3, pages.data(), 2, true}}, logits); },
               {"unknown sequence 1", "position 3"});
  const std::vector<int32_t> bad = {0, 8};
  expect_error([&] { ex.step({{1, toks.data(), 5, 0, bad.data(), 2, true}}, logits); }, {"page id 8 out of range"});
  ex.step({{1, toks.data(), 3, 0, pages.data(), 1, false}}, logits);
  expect_error([&] { ex.step({{1, toks.data(), 1, 2, pages.data(), 1, true}}, logits); },
               {"holds 3 positions", "starts at 2"});
}

TEST(CpuExecutor, FactoryPicksTheDeviceAndSizesThePool) {
  auto model = test::tiny_model(fresh_seed());
  ExecutorOptions o;
  o.page_size = 16;
  o.max_num_seqs = 3;
  auto ex = make_executor(model, o);
  EXPECT_EQ(ex->page_size(), 16);
  EXPECT_EQ(ex->num_pages(), 3 * 512 / 16);  // three sequences of the whole context
  o.num_pages = 10;
  EXPECT_EQ(make_executor(model, o)->num_pages(), 10);
  o.device = "tpu";
  expect_error([&] { make_executor(model, o); }, {"unknown or unavailable device 'tpu'"});
}

// An executor that "samples on its device" on the CPU: it records the rows the engine hands it and draws
// with a fresh Sampler per row (so only the rows' params and counters decide), greedy rows by argmax.
class DeviceSamplingFake final : public Executor {
 public:
  explicit DeviceSamplingFake(std::shared_ptr<const LlamaModel> m) : inner_(std::move(m), 4, 256) {}
  const ModelConfig& config() const override { return inner_.config(); }
  int64_t page_size() const override { return inner_.page_size(); }
  int64_t num_pages() const override { return inner_.num_pages(); }
  void step(const std::vector<SeqStep>&, float*) override { ADD_FAILURE() << "the engine asked for host logits"; }
  bool samples_on_device() const override { return true; }
  void step_sample(const std::vector<SeqStep>& batch, const std::vector<RowSampling>& rows, int32_t* ids) override {
    const int64_t V = config().vocab_size;
    std::vector<float> logits(rows.size() * size_t(V));
    inner_.step(batch, logits.data());
    for (size_t i = 0; i < rows.size(); ++i) {
      SamplingParams p = rows[i].params;
      p.seed = p.seed * 1000003u + rows[i].counter;
      ids[i] = Sampler(p).sample(logits.data() + i * size_t(V), V);
      counters.push_back(rows[i].counter);
    }
  }
  void release(int64_t id) override { inner_.release(id); }
  std::string name() const override { return "fake-device"; }
  std::vector<uint64_t> counters;

 private:
  CpuExecutor inner_;
};

TEST(ExecutorRegistry, RegisteredDevicesAndDeviceSamplingInTheEngine) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = test::tiny_model(seed);
  // The registry outlives this test: the factory holds its own slot for the last executor it made.
  auto made = std::make_shared<DeviceSamplingFake*>(nullptr);
  register_executor("fake-device", [made](std::shared_ptr<const LlamaModel> m, const ExecutorOptions&) {
    auto e = std::make_unique<DeviceSamplingFake>(std::move(m));
    *made = e.get();
    return std::unique_ptr<Executor>(std::move(e));
  });
  const auto devs = registered_devices();
  EXPECT_EQ(devs.front(), "cpu");
  EXPECT_NE(std::find(devs.begin(), devs.end(), "fake-device"), devs.end());
  ExecutorOptions o;
  o.device = "fake-device";
  auto ex = make_executor(model, o);
  DeviceSamplingFake* fake = *made;
  ASSERT_NE(fake, nullptr);
  o.device = "tpu";
  expect_error([&] { make_executor(model, o); }, {"unknown or unavailable device 'tpu'", "cpu, ", "fake-device"});
  CpuExecutor plain(model, 4, 8);
  std::vector<int32_t> t = {1}, bt = {0};
  expect_error([&] { plain.step_sample({{0, t.data(), 1, 0, bt.data(), 1, true}}, {RowSampling{}}, t.data()); },
               {"does not sample on its device"});

  // Greedy through device sampling equals the host-sampling engine; counters are each row's token index.
  engine::EngineOptions eo;
  eo.scheduler.max_num_seqs = 4;
  eo.scheduler.max_num_batched_tokens = 32;
  Engine dev(std::move(ex), test::tiny_tokenizer(), eo);
  auto host = test::make_tiny_engine(model);
  Request r;
  r.prompt = test::random_prompt(rng, 9);
  r.max_tokens = 7;
  r.ignore_eos = true;
  const RequestOutput a = dev.submit(r)->wait(), b = host->submit(r)->wait();
  EXPECT_EQ(a.tokens, b.tokens);
  ASSERT_TRUE(dev.wait_idle(std::chrono::seconds(10)));
  EXPECT_EQ(fake->counters, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(Workload, ShareGptLikeIsSeededAndWithinItsClamps) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::vector<int32_t> corpus(5000);
  for (size_t i = 0; i < corpus.size(); ++i) corpus[i] = int32_t(i);
  WorkloadSpec s;
  s.num_prompts = 2000;
  s.seed = seed;
  s.max_total = 600;
  const auto w = make_workload(s, corpus);
  ASSERT_EQ(w.size(), 2000u);
  std::vector<double> in, out;
  for (const auto& r : w) {
    ASSERT_GE(r.prompt.size(), 4u);
    ASSERT_GE(r.output_len, 4);
    ASSERT_LE(int64_t(r.prompt.size()), s.max_prompt);
    ASSERT_LE(r.output_len, s.max_output);
    ASSERT_LE(int64_t(r.prompt.size()) + r.output_len, 600);
    for (size_t k = 1; k < r.prompt.size(); ++k)  // a contiguous window of the corpus
      ASSERT_EQ(r.prompt[k], (r.prompt[k - 1] + 1) % 5000);
    EXPECT_EQ(r.arrival_s, 0.0);
    in.push_back(double(r.prompt.size()));
    out.push_back(double(r.output_len));
  }
  // Medians near the log-normal medians (2000 samples: the sample median is within ~3%).
  EXPECT_NEAR(percentile(in, 50), s.prompt_median, 0.15 * s.prompt_median);
  EXPECT_NEAR(percentile(out, 50), s.output_median, 0.15 * s.output_median);
  EXPECT_GT(percentile(in, 99), 2.5 * s.prompt_median) << "expected a long tail";
  const auto again = make_workload(s, corpus);
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(w[i].prompt, again[i].prompt);
    EXPECT_EQ(w[i].output_len, again[i].output_len);
  }
}

TEST(Workload, FixedLengthsAndPoissonArrivals) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  WorkloadSpec s;
  s.kind = WorkloadSpec::Kind::Fixed;
  s.input_len = 100;
  s.output_len = 7;
  s.num_prompts = 2000;
  s.request_rate = 50;
  s.seed = seed;
  const auto w = make_workload(s, {3, 1, 4});  // a short corpus wraps around
  double last = 0;
  for (const auto& r : w) {
    ASSERT_EQ(r.prompt.size(), 100u);
    ASSERT_EQ(r.output_len, 7);
    ASSERT_GE(r.arrival_s, last);
    last = r.arrival_s;
  }
  EXPECT_NEAR(last / 1999.0, 1.0 / 50, 0.1 / 50) << "mean gap of a Poisson process at 50 req/s";
  s.max_total = 50;
  expect_error([&] { make_workload(s, {1}); }, {"exceeds the model length 50"});
  s.max_total = 0;
  s.num_prompts = 0;
  expect_error([&] { make_workload(s, {1}); }, {"--num-prompts"});
  s.num_prompts = 1;
  expect_error([&] { make_workload(s, {}); }, {"corpus is empty"});
}

TEST(Workload, CorpusIsTokenizedText) {
  const std::string path = ::testing::TempDir() + "atom_corpus.txt";
  {
    std::ofstream f(path);
    f << "the weather is fine <|im_end|> today";
  }
  const auto& tok = *test::tiny_tokenizer();
  const auto ids = tokenize_corpus(tok, path);
  EXPECT_EQ(tok.decode(ids), "the weather is fine <|im_end|> today");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.token_id("<|im_end|>")), 0) << "special tokens are text here";
  expect_error([&] { tokenize_corpus(tok, path + ".missing"); }, {"cannot read the prompt corpus"});
}

}  // namespace
}  // namespace atom::engine
