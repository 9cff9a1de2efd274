// The serving engine on the GPU (issue 6 items 2, 6): engine::Engine over CudaExecutor with device
// sampling, CUDA graphs and a KV pool small enough to force preemption. Fresh seeds each run.
//   * concurrent requests (greedy, and seeded temperature/top-p draws) equal the same requests run one at a
//     time on a roomy pool, in fp16 and atom modes, while the small pool preempts;
//   * every page is back in the pool once the requests are done;
//   * make_executor("cuda") is registered and refuses what it cannot run.
#include <gtest/gtest.h>

#include "atom/backend/cuda/cuda_executor.h"
#include "engine_test_util.h"
#include "gpu_model_test_util.h"

using namespace gpu_test;

namespace {

std::unique_ptr<engine::Engine> gpu_engine(const LlamaModel& cpu, int64_t pages, int64_t max_seqs) {
  CudaExecutorOptions o;
  o.num_pages = pages;
  o.max_num_seqs = max_seqs;
  o.max_num_batched_tokens = 64;
  engine::EngineOptions eo;
  eo.scheduler.max_num_seqs = max_seqs;
  eo.scheduler.max_num_batched_tokens = 64;
  eo.max_queue = 64;
  return std::make_unique<engine::Engine>(make_cuda_executor(cpu, o), atom::test::tiny_tokenizer(), eo);
}

class GpuEngine : public ::testing::TestWithParam<GpuMode> {};

TEST_P(GpuEngine, ConcurrentEqualsAloneUnderPreemption) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  ModelConfig c = tiny_config();
  c.vocab_size = int(atom::test::tiny_tokenizer()->vocab_size());
  const auto cpu = cpu_model(GetParam(), seed, c);
  std::vector<engine::Request> reqs;
  for (int i = 0; i < 12; ++i) {
    engine::Request r;
    r.prompt = atom::test::random_prompt(rng, 5 + rng() % 36);
    r.max_tokens = 24;
    r.ignore_eos = true;
    if (i % 3 == 2) {  // seeded draws: batch-invariant on the GPU (counter-based RNG)
      r.sampling.temperature = 0.8f;
      r.sampling.top_p = 0.9f;
      r.sampling.seed = rng();
    }
    reqs.push_back(r);
  }
  // 8 running sequences of up to 64 tokens need 32 pages of 16; 10 pages force preemption.
  auto busy = gpu_engine(*cpu, 10, 8);
  std::vector<engine::RequestHandle> hs;
  for (const auto& r : reqs) hs.push_back(busy->submit(r));
  std::vector<engine::RequestOutput> together;
  for (auto& h : hs) together.push_back(h->wait());
  ASSERT_TRUE(busy->wait_idle(std::chrono::seconds(30)));
  const engine::EngineStats st = busy->stats();
  std::printf("%s: %lld preemptions, largest batch %lld\n", gpu_mode_name(GetParam()), (long long)st.preemptions,
              (long long)st.largest_batch);
  EXPECT_GT(st.preemptions, 0) << "the small pool was meant to preempt";
  EXPECT_EQ(st.kv_pages_used, 0) << "pages leaked";

  auto roomy = gpu_engine(*cpu, 64, 1);
  for (size_t i = 0; i < reqs.size(); ++i) {
    const engine::RequestOutput alone = roomy->submit(reqs[i])->wait();
    ASSERT_TRUE(together[i].error.empty()) << together[i].error;
    EXPECT_EQ(together[i].usage.completion_tokens, 24);
    EXPECT_EQ(together[i].tokens, alone.tokens) << "request " << i << (i % 3 == 2 ? " (sampled)" : " (greedy)");
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, GpuEngine, ::testing::Values(GpuMode::Fp16, GpuMode::Atom),
                         [](const auto& i) { return std::string(gpu_mode_name(i.param)); });

TEST(GpuEngine, MakeExecutorCuda) {
  REQUIRE_GPU();
  register_cuda_executor();
  const auto devs = engine::registered_devices();
  EXPECT_NE(std::find(devs.begin(), devs.end(), "cuda"), devs.end());
  std::shared_ptr<const LlamaModel> m = cpu_model(GpuMode::Fp16, 3);
  engine::ExecutorOptions o;
  o.device = "cuda";
  o.num_pages = 16;
  o.max_num_seqs = 4;
  o.max_num_batched_tokens = 64;
  auto ex = engine::make_executor(m, o);
  EXPECT_EQ(ex->name(), "cuda-fp16");
  EXPECT_TRUE(ex->samples_on_device());
  EXPECT_EQ(ex->num_pages(), 16);
  o.tp = 2;
  EXPECT_THROW(engine::make_executor(m, o), atom::Error);
  o.tp = 1;
  o.page_size = 8;  // the GPU cache takes pages of 16 or 32 tokens
  EXPECT_THROW(engine::make_executor(m, o), atom::Error);
}

}  // namespace
