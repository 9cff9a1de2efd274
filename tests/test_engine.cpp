// The Engine on a tiny random model: batched greedy output equals generate() alone (with
// chunked prefill and with preemption), sampling, stop strings / ids, max_tokens, cancellation,
// queue limits, invalid requests and shutdown.
#include <gtest/gtest.h>

#include <filesystem>

#include "atom/model/generate.h"
#include "atom/tokenizer/utf8.h"
#include "engine_test_util.h"
#include "test_util.h"

namespace atom::engine {
namespace {

using namespace std::chrono_literals;
using test::EngineSetup;
using test::fresh_seed;
using test::make_tiny_engine;
using test::random_prompt;
using test::tiny_model;
using test::tiny_tokenizer;

GenerateResult generate_alone(const LlamaModel& model, const Request& r) {
  GenerateOptions o;
  o.max_tokens = int(r.max_tokens);
  o.sampling = r.sampling;
  o.stop_strings = r.stop;
  o.stop_at_eos = !r.ignore_eos;
  return generate(model, *tiny_tokenizer(), r.prompt, o);
}

// Submits all requests at once and checks each against generate() of the same request alone.
void expect_batch_equals_single(const std::shared_ptr<const LlamaModel>& model, Engine& engine,
                                const std::vector<Request>& reqs) {
  std::vector<RequestHandle> handles;
  for (const Request& r : reqs) handles.push_back(engine.submit(r));
  for (size_t i = 0; i < reqs.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "request " << i << " (prompt " << reqs[i].prompt.size() << ")");
    const RequestOutput out = handles[i]->wait();
    const GenerateResult ref = generate_alone(*model, reqs[i]);
    EXPECT_EQ(out.tokens, ref.tokens);
    EXPECT_EQ(out.text, ref.text);
    EXPECT_EQ(to_string(out.finish_reason), ref.finish_reason);
    EXPECT_EQ(out.usage.prompt_tokens, int64_t(reqs[i].prompt.size()));
    EXPECT_EQ(out.usage.completion_tokens, int64_t(ref.tokens.size()));
    EXPECT_TRUE(out.error.empty()) << out.error;
  }
  ASSERT_TRUE(engine.wait_idle(10s));
  EXPECT_EQ(engine.stats().kv_pages_used, 0);
}

std::vector<Request> mixed_requests(std::mt19937_64& rng, int n) {
  std::vector<Request> reqs;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.prompt = random_prompt(rng, 1 + rng() % 45);
    r.max_tokens = 1 + int64_t(rng() % 24);
    r.ignore_eos = i % 2 == 0;
    reqs.push_back(r);
  }
  return reqs;
}

TEST(Engine, BatchedGreedyEqualsSingleRequestGeneration) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  // A small token budget forces chunked prefill of the longer prompts next to decodes.
  auto engine = make_tiny_engine(model, {.max_num_seqs = 4, .max_num_batched_tokens = 16});
  expect_batch_equals_single(model, *engine, mixed_requests(rng, 8));
  const EngineStats s = engine->stats();
  EXPECT_GT(s.largest_batch, 1) << "requests were meant to share iterations";
  EXPECT_EQ(s.finished_stop + s.finished_length, 8);
}

TEST(Engine, PreemptionKeepsGreedyOutputUnchanged) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  // 20 pages of 4 tokens: any single request fits (<= 69 tokens), eight at once do not.
  auto engine = make_tiny_engine(model, {.page_size = 4, .num_pages = 20, .max_num_seqs = 8,
                                         .max_num_batched_tokens = 64});
  std::vector<Request> reqs = mixed_requests(rng, 8);
  for (Request& r : reqs) r.ignore_eos = true, r.max_tokens = 24;
  expect_batch_equals_single(model, *engine, reqs);
  EXPECT_GT(engine->stats().preemptions, 0) << "the pool was meant to run out";
}

TEST(Engine, TensorParallelRanksGiveTheSingleDeviceGreedyOutput) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  // Two ranks (threads) each with 2 of 4 query heads, 1 of 2 kv heads and half the FFN; preemption
  // too (the per-rank caches are dropped and rebuilt on recompute).
  auto engine = make_tiny_engine(model, {.page_size = 4, .num_pages = 24, .max_num_seqs = 6,
                                         .max_num_batched_tokens = 32, .tp = 2});
  EXPECT_EQ(engine->executor().name(), "cpu-fp32-tp2");
  std::vector<Request> reqs = mixed_requests(rng, 6);
  for (Request& r : reqs) r.ignore_eos = true, r.max_tokens = 20;
  expect_batch_equals_single(model, *engine, reqs);
}

TEST(Engine, SeededSamplingMatchesGenerate) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  auto engine = make_tiny_engine(model);
  std::vector<Request> reqs = mixed_requests(rng, 4);
  for (size_t i = 0; i < reqs.size(); ++i) {
    reqs[i].sampling = {0.9f, int(i) * 5, i % 2 ? 0.9f : 1.0f, rng()};
    reqs[i].max_tokens = 16;
  }
  expect_batch_equals_single(model, *engine, reqs);
}

TEST(Engine, StreamedDeltasAreWholeUtf8AndAddUpToTheText) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  auto engine = make_tiny_engine(model);
  Request r;
  r.prompt = random_prompt(rng, 10);
  r.max_tokens = 40;
  r.ignore_eos = true;
  r.sampling = {1.5f, 0, 1.0f, rng()};  // hot sampling: plenty of stray UTF-8 bytes
  RequestHandle h = engine->submit(r);
  std::string text;
  std::vector<int32_t> tokens;
  for (;;) {
    RequestEvent ev = h->next();
    EXPECT_TRUE(tok::is_valid_utf8(ev.text)) << "a delta split a UTF-8 character";
    text += ev.text;
    tokens.insert(tokens.end(), ev.tokens.begin(), ev.tokens.end());
    if (ev.finished) {
      EXPECT_EQ(ev.finish_reason, FinishReason::Length);
      EXPECT_EQ(ev.usage.completion_tokens, 40);
      break;
    }
  }
  EXPECT_EQ(tokens.size(), 40u);
  EXPECT_EQ(text, generate_alone(*model, r).text);
}

TEST(Engine, StopStringsStopIdsAndMaxTokens) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  auto engine = make_tiny_engine(model);
  Request base;
  base.prompt = random_prompt(rng, 12);
  base.max_tokens = 30;
  base.ignore_eos = true;
  const RequestOutput full = engine->submit(base)->wait();
  ASSERT_EQ(full.tokens.size(), 30u);
  EXPECT_EQ(full.finish_reason, FinishReason::Length);

  // A stop id: the output ends just before its first occurrence.
  Request by_id = base;
  const int32_t stop_id = full.tokens[10];
  by_id.stop_token_ids = {stop_id};
  const RequestOutput o1 = engine->submit(by_id)->wait();
  const auto first = std::find(full.tokens.begin(), full.tokens.end(), stop_id) - full.tokens.begin();
  EXPECT_EQ(o1.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + first));
  EXPECT_EQ(o1.finish_reason, FinishReason::Stop);

  // A stop string taken from the middle of the text: the text ends before its first match,
  // exactly as generate() cuts it.
  if (full.text.size() >= 12) {
    Request by_text = base;
    by_text.stop = {"never appears \x01", full.text.substr(full.text.size() / 2, 3)};
    const RequestOutput o2 = engine->submit(by_text)->wait();
    const GenerateResult ref = generate_alone(*model, by_text);
    EXPECT_EQ(o2.text, ref.text);
    EXPECT_EQ(o2.text, full.text.substr(0, full.text.find(by_text.stop[1])));
    EXPECT_EQ(o2.finish_reason, FinishReason::Stop);
  }

  // max_tokens
  Request short_one = base;
  short_one.max_tokens = 3;
  const RequestOutput o3 = engine->submit(short_one)->wait();
  EXPECT_EQ(o3.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + 3));
  EXPECT_EQ(o3.finish_reason, FinishReason::Length);
  EXPECT_EQ(o3.usage.completion_tokens, 3);
}

TEST(Engine, TokenizerStopIdEndsGenerationUnlessIgnored) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  auto engine = make_tiny_engine(model);
  const int32_t im_end = tiny_tokenizer()->token_id("<|im_end|>");
  ASSERT_GE(im_end, 0);
  // A prompt that ends in the end-of-turn token usually makes the model emit it again;
  // whatever happens, it must match generate() and never output a stop id.
  Request r;
  r.prompt = random_prompt(rng, 8);
  r.max_tokens = 50;
  const RequestOutput out = engine->submit(r)->wait();
  const GenerateResult ref = generate_alone(*model, r);
  EXPECT_EQ(out.tokens, ref.tokens);
  EXPECT_EQ(to_string(out.finish_reason), ref.finish_reason);
  for (int32_t t : out.tokens) EXPECT_EQ(std::count(tiny_tokenizer()->stop_ids().begin(),
                                                   tiny_tokenizer()->stop_ids().end(), t), 0);
}

TEST(Engine, CancelFreesEveryPage) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  auto model = tiny_model(seed);
  auto engine = make_tiny_engine(model);
  Request r;
  r.prompt = random_prompt(rng, 30);
  r.max_tokens = 400;
  r.ignore_eos = true;
  RequestHandle keep = engine->submit(r);  // runs to the end beside the cancelled one
  keep.reset();
  RequestHandle h = engine->submit(r);
  RequestEvent ev = h->next();  // it is running: it has produced a token
  ASSERT_FALSE(ev.finished);
  EXPECT_GT(engine->stats().kv_pages_used, 0);
  engine->cancel(h->id());
  const RequestOutput rest = h->wait();
  EXPECT_EQ(rest.finish_reason, FinishReason::Abort);
  EXPECT_LT(rest.usage.completion_tokens, 400);
  engine->cancel(1);  // the other one too
  ASSERT_TRUE(engine->wait_idle(10s));
  const EngineStats s = engine->stats();
  EXPECT_EQ(s.kv_pages_used, 0);
  EXPECT_EQ(s.finished_abort, 2);
  EXPECT_EQ(dynamic_cast<const CpuExecutor&>(engine->executor()).num_live_sequences(), 0);
  engine->cancel(12345);  // unknown ids are ignored
}

TEST(Engine, CancelWhileQueuedAnswersAtOnce) {
  auto engine = make_tiny_engine(tiny_model(fresh_seed()), {.autostart = false});
  Request r;
  r.prompt = {65, 66, 67};
  RequestHandle h = engine->submit(r);
  engine->cancel(h->id());
  RequestEvent ev;
  ASSERT_TRUE(h->next(ev, 0ms)) << "a queued request is answered without the loop";
  EXPECT_TRUE(ev.finished);
  EXPECT_EQ(ev.finish_reason, FinishReason::Abort);
  EXPECT_EQ(engine->stats().waiting, 0);
}

TEST(Engine, FullQueueIsADistinctError) {
  auto engine = make_tiny_engine(tiny_model(fresh_seed()), {.max_queue = 2, .autostart = false});
  Request r;
  r.prompt = {65, 66, 67};
  r.max_tokens = 2;
  RequestHandle a = engine->submit(r), b = engine->submit(r);
  EXPECT_EQ(engine->stats().waiting, 2);
  try {
    engine->submit(r);
    ADD_FAILURE() << "the third request should not fit the queue";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::QueueFull);
    EXPECT_NE(std::string(e.what()).find("queue is full"), std::string::npos);
  }
  engine->start();  // the queue drains and both complete
  EXPECT_EQ(a->wait().finish_reason == FinishReason::Abort, false);
  EXPECT_EQ(b->wait().usage.prompt_tokens, 3);
  ASSERT_TRUE(engine->wait_idle(10s));
  EXPECT_NO_THROW(engine->submit(r)->wait());
}

TEST(Engine, InvalidRequestsAreRejectedWithReasons) {
  auto model = tiny_model(fresh_seed());
  auto engine = make_tiny_engine(model, {.page_size = 4, .num_pages = 10});  // 40 tokens of KV
  auto expect_invalid = [&](Request r, const std::string& needle) {
    try {
      engine->submit(std::move(r));
      ADD_FAILURE() << "accepted; expected: " << needle;
    } catch (const EngineError& e) {
      EXPECT_EQ(e.kind(), EngineError::Kind::InvalidRequest);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  Request ok;
  ok.prompt = {65, 66};
  ok.max_tokens = 4;
  ok.ignore_eos = true;
  Request r = ok;
  r.prompt.clear();
  expect_invalid(r, "prompt is empty");
  r = ok;
  r.prompt = {65, 99999};
  expect_invalid(r, "out of range");
  r = ok;
  r.max_tokens = 0;
  expect_invalid(r, "max_tokens must be >= 1");
  r = ok;
  r.max_tokens = 39;  // 41 tokens > 40 of KV
  expect_invalid(r, "whole KV cache");
  r = ok;
  r.sampling.temperature = -1;
  expect_invalid(r, "temperature");
  r = ok;
  r.sampling.top_p = 0;
  expect_invalid(r, "top_p");
  auto long_ctx = make_tiny_engine(model);
  r = ok;
  r.max_tokens = 511;  // 513 > the 512-token context
  try {
    long_ctx->submit(r);
    ADD_FAILURE() << "accepted a request longer than the context";
  } catch (const EngineError& e) {
    EXPECT_NE(std::string(e.what()).find("maximum model length 512"), std::string::npos) << e.what();
  }
  EXPECT_EQ(engine->submit(ok)->wait().usage.completion_tokens, 4);  // the engine still works
}

TEST(Engine, ShutdownAbortsRunningRequestsAndRefusesNewOnes) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto engine = make_tiny_engine(tiny_model(seed));
  Request r;
  r.prompt = random_prompt(rng, 5);
  r.max_tokens = 450;
  r.ignore_eos = true;
  RequestHandle h = engine->submit(r);
  ASSERT_FALSE(h->next().finished);
  engine->shutdown();
  const RequestOutput out = h->wait();
  EXPECT_EQ(out.finish_reason, FinishReason::Abort);
  EXPECT_NE(out.error.find("shutting down"), std::string::npos);
  EXPECT_EQ(engine->stats().kv_pages_used, 0);
  try {
    engine->submit(r);
    ADD_FAILURE() << "accepted after shutdown";
  } catch (const EngineError& e) {
    EXPECT_EQ(e.kind(), EngineError::Kind::ShuttingDown);
  }
}

TEST(Engine, StatsCountTokensAndLatencies) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto engine = make_tiny_engine(tiny_model(seed));
  Request r;
  r.prompt = random_prompt(rng, 7);
  r.max_tokens = 5;
  r.ignore_eos = true;
  const RequestOutput out = engine->submit(r)->wait();
  EXPECT_GT(out.ttft_s, 0);
  EXPECT_GT(out.tpot_s, 0);
  ASSERT_TRUE(engine->wait_idle(10s));
  const EngineStats s = engine->stats();
  EXPECT_EQ(s.generated_tokens, 5);
  EXPECT_EQ(s.prompt_tokens, 7);
  EXPECT_EQ(s.finished_length, 1);
  EXPECT_EQ(s.ttft.count(), 1);
  EXPECT_EQ(s.tpot.count(), 1);
  EXPECT_EQ(s.kv_pages_total, 256);
  EXPECT_GE(s.kv_pages_peak, 3);  // 11 positions in 4-token pages
  EXPECT_GE(s.iterations, 5);
}

TEST(EngineMetrics, HistogramAndPercentiles) {
  Histogram h({0.1, 1.0});
  for (double v : {0.05, 0.1, 0.5, 2.0}) h.observe(v);
  EXPECT_EQ(h.cumulative_counts(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(h.count(), 4);
  EXPECT_DOUBLE_EQ(h.sum(), 2.65);
  EXPECT_DOUBLE_EQ(percentile({3, 1, 2}, 50), 2.0);
  EXPECT_DOUBLE_EQ(percentile({1, 2}, 50), 1.5);
  EXPECT_DOUBLE_EQ(percentile({1, 2, 3, 4, 5}, 100), 5.0);
  EXPECT_DOUBLE_EQ(percentile({}, 99), 0.0);
}

}  // namespace
}  // namespace atom::engine

namespace atom::engine {
namespace {

// With SmolLM2's real tokenizer (when the GGUF is present): chat-templated prompts, whole UTF-8
// characters in every delta, and the same text as generate().
TEST(Engine, RealTokenizerChatPromptsStreamWholeCharacters) {
  const std::string gguf = ATOM_MODEL_DIR "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(gguf)) GTEST_SKIP() << "SmolLM2 GGUF not found at " << gguf;
  static std::shared_ptr<const Tokenizer> tok(load_tokenizer(gguf));
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  std::shared_ptr<const LlamaModel> model = make_random_llama(test::tiny_engine_config(tok->vocab_size()), seed);
  EngineOptions o;
  Engine engine(std::make_unique<CpuExecutor>(model, 16, 64), tok, o);
  const std::string text = tok->apply_chat_template({{"user", "Ünïcödé 🙂 and 中文, please"}}, true);
  Request r;
  r.prompt = tok->encode(text);
  r.max_tokens = 24;
  r.ignore_eos = true;
  r.sampling = {1.0f, 0, 1.0f, rng()};
  RequestHandle h = engine.submit(r);
  std::string streamed;
  for (RequestEvent ev = h->next();; ev = h->next()) {
    EXPECT_TRUE(tok::is_valid_utf8(ev.text));
    streamed += ev.text;
    if (ev.finished) break;
  }
  GenerateOptions g;
  g.max_tokens = 24;
  g.sampling = r.sampling;
  g.stop_at_eos = false;
  EXPECT_EQ(streamed, generate(*model, *tok, r.prompt, g).text);
}

}  // namespace
}  // namespace atom::engine
