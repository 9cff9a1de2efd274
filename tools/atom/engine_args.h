// Engine options shared by `atom serve` and `atom bench serve`: the same flags, the same
// defaults, one place that turns them into an Engine.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "atom/engine/engine.h"
#include "commands.h"

namespace atom::cli {

struct EngineArgs {
  std::string device = "cpu";
  int64_t max_num_seqs = 8;
  int64_t max_num_batched_tokens = 512;
  int64_t max_queue = 256;
  int64_t page_size = 16;
  int64_t kv_pages = 0;       // 0 = max_num_seqs sequences of max_model_len
  int64_t max_model_len = 0;  // 0 = the model context
  int threads = 0;
  int tp = 1;                 // tensor-parallel ranks
  float gpu_memory_utilization = 0.9f;  // cuda: share of GPU memory for weights + KV pool
  bool cuda_graphs = true;              // cuda: decode steps from CUDA graphs
};

void add_engine_options(CLI::App* cmd, EngineArgs& a);

// Builds the executor for `a.device` over the loaded model and an engine around it.
std::unique_ptr<engine::Engine> make_engine(const EngineArgs& a, LoadedModel loaded);

}  // namespace atom::cli
