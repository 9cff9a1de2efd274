#include "engine_args.h"

#include <spdlog/spdlog.h>

#include "atom/engine/executor.h"

namespace atom::cli {

void add_engine_options(CLI::App* c, EngineArgs& a) {
  std::string devices;
  for (const std::string& d : engine::registered_devices()) devices += (devices.empty() ? "" : ", ") + d;
  c->add_option("--device", a.device, "Backend that runs the model (this build: " + devices + ")")
      ->capture_default_str();
  c->add_option("--gpu-memory-utilization", a.gpu_memory_utilization,
                "cuda: the KV pool takes this share of GPU memory minus what is already in use "
                "(unless --kv-pages is given)")
      ->capture_default_str()->check(CLI::Range(0.01f, 1.0f));
  c->add_flag("--cuda-graphs,!--no-cuda-graphs", a.cuda_graphs, "cuda: replay decode steps from CUDA graphs")
      ->capture_default_str();
  c->add_option("--max-num-seqs", a.max_num_seqs, "Sequences in the running batch at most")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  c->add_option("--max-num-batched-tokens", a.max_num_batched_tokens,
                "New tokens per iteration at most (long prompts are prefilled in chunks of this)")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  c->add_option("--max-queue", a.max_queue, "Waiting requests at most (more are refused: HTTP 429)")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  c->add_option("--page-size", a.page_size, "Tokens per KV page")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--kv-pages", a.kv_pages,
                "KV pool size in pages (0 = cpu: max-num-seqs sequences of max-model-len; cuda: from free memory)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--max-model-len", a.max_model_len, "Prompt + completion tokens at most (0 = the model context)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("-t,--threads", a.threads, "CPU threads (0 = all)")->capture_default_str();
  c->add_option("--tp", a.tp, "Tensor-parallel ranks (cpu: threads in one process; an Atom/W8A8 checkpoint "
                              "must be quantized with --tp-segments a multiple of it)")
      ->capture_default_str()->check(CLI::Range(1, 64));
}

std::unique_ptr<engine::Engine> make_engine(const EngineArgs& a, LoadedModel loaded) {
  set_threads(a.threads);
  engine::ExecutorOptions xo;
  xo.device = a.device;
  xo.page_size = a.page_size;
  xo.num_pages = a.kv_pages;
  xo.max_num_seqs = a.max_num_seqs;
  xo.max_model_len = a.max_model_len;
  xo.tp = a.tp;
  xo.max_num_batched_tokens = a.max_num_batched_tokens;
  xo.gpu_memory_utilization = a.gpu_memory_utilization;
  xo.cuda_graphs = a.cuda_graphs;
  auto executor = engine::make_executor(std::shared_ptr<const LlamaModel>(std::move(loaded.model)), xo);
  engine::EngineOptions eo;
  eo.scheduler.max_num_seqs = a.max_num_seqs;
  eo.scheduler.max_num_batched_tokens = a.max_num_batched_tokens;
  eo.max_queue = a.max_queue;
  eo.max_model_len = a.max_model_len;
  spdlog::info("engine: {} executor, KV pool {} pages x {} tokens, batch <= {} seqs / {} tokens, queue <= {}",
               executor->name(), executor->num_pages(), executor->page_size(), a.max_num_seqs,
               a.max_num_batched_tokens, a.max_queue);
  return std::make_unique<engine::Engine>(std::move(executor),
                                          std::shared_ptr<const Tokenizer>(std::move(loaded.tokenizer)), eo);
}

}  // namespace atom::cli
