// atom bench serve: offline serving throughput. Drives the Engine directly (no HTTP) with a
// seeded ShareGPT-like or fixed-length workload, one model after another, and reports output
// and total tokens/s, TTFT and TPOT percentiles and the largest batch side by side.
// `bench` is a parent command so other benchmarks (e.g. `bench kernels`) can sit beside `serve`.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "atom/core/error.h"
#include "atom/core/progress.h"
#include "atom/engine/metrics.h"
#include "atom/engine/workload.h"
#include "commands.h"
#include "engine_args.h"

namespace atom::cli {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchServeArgs {
  std::vector<std::string> models;
  std::string dataset = "../shared/data/wikitext2-test.txt";
  engine::WorkloadSpec spec;
  double request_rate = std::numeric_limits<double>::infinity();
  std::string json_out, plot;
  EngineArgs engine;
};

struct BenchResult {
  std::string model, executor;
  int64_t requests = 0, failed = 0, prompt_tokens = 0, output_tokens = 0, largest_batch = 0, preemptions = 0;
  double duration_s = 0, output_tps = 0, total_tps = 0;
  double ttft_p50 = 0, ttft_p99 = 0, tpot_p50 = 0, tpot_p99 = 0;  // seconds
};

// Hands the engine's handles to a collector thread in submission order.
class Collector {
 public:
  explicit Collector(int64_t total, const std::string& label) : bar_(label, total), total_(total) {
    thread_ = std::thread([this] { run(); });
  }
  void add(engine::RequestHandle h) {
    {
      std::lock_guard lk(mu_);
      pending_.push_back(std::move(h));
    }
    cv_.notify_one();
  }
  std::vector<engine::RequestOutput> finish() {
    thread_.join();
    bar_.finish();
    return std::move(outputs_);
  }

 private:
  void run() {
    for (int64_t i = 0; i < total_; ++i) {
      engine::RequestHandle h;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return !pending_.empty(); });
        h = std::move(pending_.front());
        pending_.pop_front();
      }
      outputs_.push_back(h->wait());
      bar_.tick();
    }
  }
  ProgressBar bar_;
  int64_t total_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<engine::RequestHandle> pending_;
  std::vector<engine::RequestOutput> outputs_;
  std::thread thread_;
};

BenchResult run_model(const std::string& path, const BenchServeArgs& a) {
  EngineArgs ea = a.engine;
  ea.max_queue = std::max(ea.max_queue, a.spec.num_prompts);  // the benchmark queues everything it sends
  auto engine = make_engine(ea, load_model_and_tokenizer(path));
  engine::WorkloadSpec spec = a.spec;
  spec.request_rate = a.request_rate;
  spec.max_total = std::min(engine->max_model_len(), engine->kv_capacity_tokens());
  const auto requests = engine::make_workload(spec, engine::tokenize_corpus(engine->tokenizer(), a.dataset));

  BenchResult r;
  r.model = std::filesystem::path(path).filename().string();
  r.executor = engine->executor().name();
  r.requests = int64_t(requests.size());
  Collector collector(r.requests, fmt::format("bench {}", r.model));
  const Clock::time_point start = Clock::now();
  for (const engine::BenchRequest& b : requests) {
    std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(b.arrival_s)));
    engine::Request req;
    req.prompt = b.prompt;
    req.max_tokens = b.output_len;
    req.ignore_eos = true;  // fixed output lengths, as the workload says
    collector.add(engine->submit(std::move(req)));
  }
  const std::vector<engine::RequestOutput> outs = collector.finish();
  r.duration_s = std::chrono::duration<double>(Clock::now() - start).count();

  std::vector<double> ttft, tpot;
  for (const auto& o : outs) {
    if (o.finish_reason == engine::FinishReason::Abort) {
      ++r.failed;
      spdlog::warn("a request failed: {}", o.error);
      continue;
    }
    r.prompt_tokens += o.usage.prompt_tokens;
    r.output_tokens += o.usage.completion_tokens;
    ttft.push_back(o.ttft_s);
    if (o.usage.completion_tokens > 1) tpot.push_back(o.tpot_s);
  }
  r.output_tps = double(r.output_tokens) / r.duration_s;
  r.total_tps = double(r.prompt_tokens + r.output_tokens) / r.duration_s;
  r.ttft_p50 = engine::percentile(ttft, 50);
  r.ttft_p99 = engine::percentile(ttft, 99);
  r.tpot_p50 = engine::percentile(tpot, 50);
  r.tpot_p99 = engine::percentile(tpot, 99);
  const engine::EngineStats s = engine->stats();
  r.largest_batch = s.largest_batch;
  r.preemptions = s.preemptions;
  return r;
}

json to_json(const BenchResult& r) {
  return {{"model", r.model},          {"executor", r.executor},       {"requests", r.requests},
          {"failed", r.failed},        {"prompt_tokens", r.prompt_tokens}, {"output_tokens", r.output_tokens},
          {"duration_s", r.duration_s}, {"output_tokens_per_s", r.output_tps}, {"total_tokens_per_s", r.total_tps},
          {"ttft_ms", {{"p50", r.ttft_p50 * 1e3}, {"p99", r.ttft_p99 * 1e3}}},
          {"tpot_ms", {{"p50", r.tpot_p50 * 1e3}, {"p99", r.tpot_p99 * 1e3}}},
          {"largest_batch", r.largest_batch}, {"preemptions", r.preemptions}};
}

json workload_json(const BenchServeArgs& a) {
  const auto& s = a.spec;
  json w = {{"num_prompts", s.num_prompts}, {"seed", s.seed},
            {"request_rate", std::isfinite(a.request_rate) ? json(a.request_rate) : json("inf")},
            {"dataset", a.dataset}};
  if (s.kind == engine::WorkloadSpec::Kind::Fixed) {
    w["kind"] = "fixed";
    w["input_len"] = s.input_len;
    w["output_len"] = s.output_len;
  } else {
    w["kind"] = "sharegpt-like";
    w["prompt_lognormal"] = {{"median", s.prompt_median}, {"sigma", s.prompt_sigma}, {"max", s.max_prompt}};
    w["output_lognormal"] = {{"median", s.output_median}, {"sigma", s.output_sigma}, {"max", s.max_output}};
  }
  return w;
}

void print_table(const std::vector<BenchResult>& rs) {
  fmt::print("{:<36} {:>10} {:>6} {:>9} {:>11} {:>11} {:>17} {:>17} {:>6} {:>7}\n", "model", "executor", "reqs",
             "time s", "out tok/s", "total tok/s", "TTFT p50/p99 ms", "TPOT p50/p99 ms", "batch", "preempt");
  for (const BenchResult& r : rs)
    fmt::print("{:<36} {:>10} {:>6} {:>9.2f} {:>11.1f} {:>11.1f} {:>17} {:>17} {:>6} {:>7}\n", r.model, r.executor,
               r.requests - r.failed, r.duration_s, r.output_tps, r.total_tps,
               fmt::format("{:.0f}/{:.0f}", r.ttft_p50 * 1e3, r.ttft_p99 * 1e3),
               fmt::format("{:.1f}/{:.1f}", r.tpot_p50 * 1e3, r.tpot_p99 * 1e3), r.largest_batch, r.preemptions);
}

// Throughput, TTFT and TPOT bars per model in one PNG, through gnuplot when it is installed.
void write_plot(const std::vector<BenchResult>& rs, const std::string& png) {
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    spdlog::warn("gnuplot not found: skipping the plot {} (apt-get install gnuplot-nox)", png);
    return;
  }
  const std::string dat = png + ".dat", gp = png + ".gp";
  {
    std::ofstream d(dat);
    ATOM_CHECK(d.good(), "cannot write {}", dat);
    d << "# model out_tok_s total_tok_s ttft_p50_ms ttft_p99_ms tpot_p50_ms tpot_p99_ms\n";
    for (const BenchResult& r : rs)
      d << fmt::format("\"{}\" {} {} {} {} {} {}\n", r.model, r.output_tps, r.total_tps, r.ttft_p50 * 1e3,
                       r.ttft_p99 * 1e3, r.tpot_p50 * 1e3, r.tpot_p99 * 1e3);
  }
  {
    std::ofstream g(gp);
    ATOM_CHECK(g.good(), "cannot write {}", gp);
    g << fmt::format(
        "set terminal png size 1500,500 noenhanced\nset output '{}'\n"
        "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 border -1\n"
        "set boxwidth 0.9\nset grid ytics\nset key top left\nset xtics rotate by -20\nset yrange [0:*]\n"
        "set multiplot layout 1,3 title 'atom bench serve'\n"
        "set title 'throughput (tokens/s)'\n"
        "plot '{}' using 2:xtic(1) title 'output', '' using 3 title 'total'\n"
        "set title 'TTFT (ms)'\n"
        "plot '{}' using 4:xtic(1) title 'p50', '' using 5 title 'p99'\n"
        "set title 'TPOT (ms)'\n"
        "plot '{}' using 6:xtic(1) title 'p50', '' using 7 title 'p99'\n"
        "unset multiplot\n",
        png, dat, dat, dat);
  }
  if (std::system(fmt::format("gnuplot '{}'", gp).c_str()) != 0) {
    spdlog::warn("gnuplot failed; its script is {}", gp);
    return;
  }
  std::filesystem::remove(dat);
  std::filesystem::remove(gp);
  spdlog::info("plot written to {}", png);
}

void run_bench_serve(BenchServeArgs a) {
  ATOM_CHECK(!a.models.empty(), "give at least one --model");
  a.spec.validate();
  spdlog::info("workload: {}", workload_json(a).dump());
  std::vector<BenchResult> results;
  for (const std::string& m : a.models) {
    results.push_back(run_model(m, a));
    print_table({results.back()});
  }
  if (results.size() > 1) {
    fmt::print("\n");
    print_table(results);
  }
  if (!a.json_out.empty()) {
    json j = {{"workload", workload_json(a)}, {"results", json::array()}};
    for (const BenchResult& r : results) j["results"].push_back(to_json(r));
    std::ofstream f(a.json_out);
    ATOM_CHECK(f.good(), "cannot write --json {}", a.json_out);
    f << j.dump(2) << "\n";
    spdlog::info("results written to {}", a.json_out);
  }
  if (!a.plot.empty()) write_plot(results, a.plot);
}

}  // namespace

void add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks (serve: end-to-end serving throughput)");
  bench->require_subcommand(1);

  auto a = std::make_shared<BenchServeArgs>();
  a->engine.max_num_seqs = 8;
  a->engine.max_model_len = 2048;  // keeps the default KV pool modest on a CPU
  CLI::App* c = bench->add_subcommand("serve", "Offline serving throughput of one or more models, side by side");
  c->add_option("-m,--model", a->models, "Model to benchmark (repeat, or comma-separate, to compare)")
      ->delimiter(',');
  c->add_option("--models", a->models, "Same as --model: a comma-separated list")->delimiter(',');
  c->add_option("--dataset", a->dataset, "Text the prompts are cut from (tokenized)")->capture_default_str();
  c->add_option("--num-prompts", a->spec.num_prompts, "Requests to send")->capture_default_str();
  c->add_option("--request-rate", a->request_rate, "Poisson arrival rate in requests/s (inf = all at once)")
      ->capture_default_str();
  c->add_option("--seed", a->spec.seed, "Workload seed (lengths, prompts, arrivals)")->capture_default_str();
  auto* in = c->add_option("--input-len", a->spec.input_len, "Fixed workload: prompt tokens per request");
  auto* out = c->add_option("--output-len", a->spec.output_len, "Fixed workload: output tokens per request");
  c->add_option("--prompt-median", a->spec.prompt_median, "ShareGPT-like: median prompt tokens")->capture_default_str();
  c->add_option("--prompt-sigma", a->spec.prompt_sigma, "ShareGPT-like: log-normal sigma of prompt lengths")
      ->capture_default_str();
  c->add_option("--output-median", a->spec.output_median, "ShareGPT-like: median output tokens")->capture_default_str();
  c->add_option("--output-sigma", a->spec.output_sigma, "ShareGPT-like: log-normal sigma of output lengths")
      ->capture_default_str();
  c->add_option("--json", a->json_out, "Write the results as JSON");
  c->add_option("--plot", a->plot, "Write a PNG of throughput / TTFT / TPOT (needs gnuplot)");
  add_engine_options(c, a->engine);
  c->callback([a, in, out] {
    BenchServeArgs args = *a;
    if (in->count() || out->count()) {
      ATOM_CHECK(in->count() && out->count(), "a fixed workload needs both --input-len and --output-len");
      args.spec.kind = engine::WorkloadSpec::Kind::Fixed;
    }
    if (args.models.empty()) args.models.push_back(default_model_path());
    run_bench_serve(std::move(args));
  });
}

}  // namespace atom::cli
