// Offline serving throughput of the GPU engine path (issue 6 targets) on synthetic models: the engine's
// Scheduler + PagePool (continuous batching, chunked prefill, preemption) driving CudaExecutor with greedy
// sampling on the GPU, every request ignoring EOS (output lengths exactly the workload's), all arriving
// at t = 0. Prompts are seeded random token ids (synthetic models have no tokenizer). Modes run one after
// another in one process, same workload. Reports output / total tokens/s, TTFT and TPOT p50/p99, the
// largest batch, preemptions, CUDA-graph replays; --json writes them. --tp N runs the tensor-parallel
// executor over N GPUs (rank shards of the shape, synthetic weights; issue 7).
//
//   bench_serve_gpu --shape llama2-7b --modes fp16,w8a8,atom --workload fixed --input-len 128 --output-len 128 [--tp N]
//                   --num-prompts 1024 --max-num-seqs 256 [--max-num-batched-tokens 4096] [--json out.json]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "atom/backend/cuda/cuda_executor.h"
#ifdef ATOM_WITH_NCCL
#include "atom/backend/cuda/nccl/tp_executor.h"
#endif
#include "atom/core/error.h"
#include "atom/engine/metrics.h"
#include "atom/engine/page_pool.h"
#include "atom/engine/scheduler.h"
#include "atom/engine/workload.h"
#include "bench_json.h"

using namespace atom;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string shape = "llama2-7b", modes = "fp16,w8a8,atom", workload = "fixed", json;
  int64_t input_len = 128, output_len = 128, num_prompts = 256, max_num_seqs = 256, max_batched = 4096;
  int64_t max_model_len = 2048;
  int tp = 1;
  float mem = 0.9f;
  uint64_t seed = 1;
  bool graphs = true;
};

nlohmann::json run_mode(const Args& a, cuda::GpuMode mode, const std::vector<engine::BenchRequest>& reqs) {
  cuda::CudaExecutorOptions o;
  o.max_num_seqs = a.max_num_seqs;
  o.max_num_batched_tokens = a.max_batched;
  o.max_model_len = a.max_model_len;
  o.gpu_memory_utilization = a.mem;
  o.cuda_graphs = a.graphs;
  std::unique_ptr<engine::Executor> ex;
  cuda::CudaExecutor* one = nullptr;  // the single-GPU executor (graph counters, weight bytes)
  if (a.tp > 1) {
#ifdef ATOM_WITH_NCCL
    ex = cuda::make_synthetic_tp_cuda_executor(a.shape, mode, 1234, a.tp, o);
#else
    fail("--tp {}: this build has no NCCL", a.tp);
#endif
  } else {
    auto e = cuda::make_synthetic_cuda_executor(a.shape, mode, 1234, o);
    one = e.get();
    ex = std::move(e);
    std::printf("%s\n", one->model().summary().c_str());
  }

  engine::PagePool pool(ex->num_pages(), ex->page_size());
  engine::SchedulerConfig sc;
  sc.max_num_seqs = a.max_num_seqs;
  sc.max_num_batched_tokens = a.max_batched;
  engine::Scheduler sched(sc, pool);
  std::vector<engine::Sequence> seqs(reqs.size());
  std::vector<double> first(reqs.size(), -1), last(reqs.size(), -1);
  int64_t prompt_tokens = 0, out_tokens = 0, largest = 0, iters = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    seqs[i].id = int64_t(i);
    seqs[i].tokens = reqs[i].prompt;
    seqs[i].prompt_len = int64_t(reqs[i].prompt.size());
    prompt_tokens += seqs[i].prompt_len;
    sched.add(&seqs[i]);
  }
  std::vector<engine::SeqStep> batch;
  std::vector<int32_t> ids;
  std::vector<engine::RowSampling> rows;  // greedy
  const auto t0 = Clock::now();
  while (sched.has_work()) {
    const engine::SchedulerStep step = sched.schedule();
    ATOM_CHECK(!step.chunks.empty(), "bench: the scheduler made no progress");
    batch.clear();
    for (const engine::ScheduledChunk& c : step.chunks) {
      const engine::Sequence& s = *c.seq;
      batch.push_back({s.id, s.tokens.data() + s.num_computed, c.n_tokens, s.num_computed, s.block_table.data(),
                       int64_t(s.block_table.size()), c.want_logits});
    }
    ids.resize(batch.size());
    if (one) {
      one->step_greedy(batch, ids.data());
    } else {
      rows.assign(size_t(std::count_if(batch.begin(), batch.end(), [](const auto& b) { return b.want_logits; })),
                  engine::RowSampling{});
      ex->step_sample(batch, rows, ids.data());
    }
    sched.commit(step);
    ++iters;
    largest = std::max(largest, int64_t(step.chunks.size()));
    const double now = std::chrono::duration<double>(Clock::now() - t0).count();
    size_t row = 0;
    for (const engine::ScheduledChunk& c : step.chunks) {
      if (!c.want_logits) continue;
      engine::Sequence& s = *c.seq;
      s.tokens.push_back(ids[row++]);
      ++out_tokens;
      if (first[size_t(s.id)] < 0) first[size_t(s.id)] = now;
      if (s.num_generated() >= reqs[size_t(s.id)].output_len) {
        last[size_t(s.id)] = now;
        sched.finish(&s);
      }
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::vector<double> ttft, tpot;
  for (size_t i = 0; i < reqs.size(); ++i) {
    ttft.push_back(first[i]);
    if (reqs[i].output_len > 1) tpot.push_back((last[i] - first[i]) / double(reqs[i].output_len - 1));
  }
  nlohmann::json j = {{"mode", cuda::gpu_mode_name(mode)},
                      {"shape", a.shape},
                      {"executor", ex->name()},
                      {"tp", a.tp},
                      {"weights_gib", one ? double(one->model().weight_bytes()) / double(1 << 30) : 0.0},
                      {"kv_pages", ex->num_pages()},
                      {"requests", reqs.size()},
                      {"seconds", secs},
                      {"prompt_tokens", prompt_tokens},
                      {"output_tokens", out_tokens},
                      {"output_tok_s", double(out_tokens) / secs},
                      {"total_tok_s", double(out_tokens + prompt_tokens) / secs},
                      {"ttft_p50_ms", 1e3 * engine::percentile(ttft, 50)},
                      {"ttft_p99_ms", 1e3 * engine::percentile(ttft, 99)},
                      {"tpot_p50_ms", 1e3 * engine::percentile(tpot, 50)},
                      {"tpot_p99_ms", 1e3 * engine::percentile(tpot, 99)},
                      {"largest_batch", largest},
                      {"iterations", iters},
                      {"preemptions", sched.num_preemptions()},
                      {"graph_replays", one ? one->model().graph_replays() : 0},
                      {"graphs", one ? one->model().graphs_captured() : 0}};
  std::printf("%s\n", j.dump().c_str());
  return j;
}

constexpr const char* kUsage =
    "bench_serve_gpu [--shape llama2-7b|llama2-13b|llama2-70b|llama3-8b] [--modes fp16,w8a8,atom]\n"
    "                [--workload fixed|sharegpt] [--input-len N --output-len N] [--num-prompts N]\n"
    "                [--max-num-seqs N] [--max-num-batched-tokens N] [--max-model-len N]\n"
    "                [--gpu-memory-utilization F] [--graphs 0|1] [--tp N] [--seed S] [--json FILE]\n";

Args parse(int argc, char** argv) {
  Args a;
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "-h" || k == "--help") {
      std::printf("%s", kUsage);
      std::exit(0);
    }
    ATOM_CHECK(i + 1 < argc, "{} needs a value\n{}", k, kUsage);
    kv[k] = argv[i + 1];
  }
  auto get = [&](const char* k, auto& v) {
    if (auto it = kv.find(k); it != kv.end()) {
      std::istringstream is(it->second);
      is >> v;
      ATOM_CHECK(!is.fail(), "bad value '{}' for {}", it->second, k);
      kv.erase(it);
    }
  };
  get("--shape", a.shape);
  get("--modes", a.modes);
  get("--workload", a.workload);
  get("--json", a.json);
  get("--input-len", a.input_len);
  get("--output-len", a.output_len);
  get("--num-prompts", a.num_prompts);
  get("--max-num-seqs", a.max_num_seqs);
  get("--max-num-batched-tokens", a.max_batched);
  get("--max-model-len", a.max_model_len);
  get("--gpu-memory-utilization", a.mem);
  get("--seed", a.seed);
  get("--graphs", a.graphs);
  get("--tp", a.tp);
  ATOM_CHECK(kv.empty(), "unknown option {}\n{}", kv.empty() ? "" : kv.begin()->first, kUsage);
  ATOM_CHECK(a.workload == "fixed" || a.workload == "sharegpt", "--workload must be fixed or sharegpt, got '{}'",
             a.workload);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    engine::WorkloadSpec spec;
    spec.kind = a.workload == "fixed" ? engine::WorkloadSpec::Kind::Fixed : engine::WorkloadSpec::Kind::ShareGptLike;
    spec.num_prompts = a.num_prompts;
    spec.seed = a.seed;
    spec.input_len = a.input_len;
    spec.output_len = a.output_len;
    spec.max_total = a.max_model_len;
    spec.validate();
    const int64_t vocab = cuda::GpuLlamaModel::named_shape(a.shape).vocab_size;
    std::mt19937_64 rng(a.seed);
    std::vector<int32_t> corpus(1 << 20);
    for (auto& t : corpus) t = int32_t(rng() % uint64_t(vocab));
    const auto reqs = engine::make_workload(spec, corpus);
    nlohmann::json out = {{"shape", a.shape},
                          {"workload", a.workload == "fixed" ? fmt::format("fixed {}/{}", a.input_len, a.output_len)
                                                             : std::string("sharegpt-like")},
                          {"num_prompts", a.num_prompts},
                          {"max_num_seqs", a.max_num_seqs},
                          {"max_num_batched_tokens", a.max_batched},
                          {"cuda_graphs", a.graphs},
                          {"tp", a.tp},
                          {"results", nlohmann::json::array()}};
    std::stringstream ms(a.modes);
    for (std::string m; std::getline(ms, m, ',');) out["results"].push_back(run_mode(a, cuda::parse_gpu_mode(m), reqs));
    std::printf("\n%-6s %10s %10s %9s %9s %9s %9s %6s\n", "mode", "out tok/s", "tot tok/s", "TTFT p50", "TTFT p99",
                "TPOT p50", "TPOT p99", "batch");
    for (const auto& r : out["results"])
      std::printf("%-6s %10.0f %10.0f %8.0fms %8.0fms %8.1fms %8.1fms %6lld\n", r["mode"].get<std::string>().c_str(),
                  r["output_tok_s"].get<double>(), r["total_tok_s"].get<double>(), r["ttft_p50_ms"].get<double>(),
                  r["ttft_p99_ms"].get<double>(), r["tpot_p50_ms"].get<double>(), r["tpot_p99_ms"].get<double>(),
                  (long long)r["largest_batch"].get<int64_t>());
    if (!a.json.empty() && !atom::bench::write_json(a.json, out)) return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_serve_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
