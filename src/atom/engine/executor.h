// The contract between the serving engine and a model backend. The engine owns scheduling and
// page accounting (PagePool, block tables); an executor runs one iteration over a ragged batch
// and keeps the K/V of each sequence in the pages the engine assigned to it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "atom/model/config.h"
#include "atom/model/sampler.h"

namespace atom {
struct LlamaModel;
}

namespace atom::engine {

// How the device samples one logits row: the request's parameters and the index of the token being drawn
// (its generated-token count), which with params.seed keys a counter-based RNG, so a seeded request draws
// the same tokens however it is batched (on that executor; the CPU Sampler's stream differs).
struct RowSampling {
  SamplingParams params;
  uint64_t counter = 0;
};

struct SeqStep {                 // one sequence's slice of a batch iteration
  int64_t seq_id;
  const int32_t* tokens;         // new tokens: a prefill chunk, or 1 token when decoding
  int64_t n_tokens;
  int64_t start_pos;             // tokens of this sequence already in its KV pages
  const int32_t* block_table;    // page ids holding positions [0, start_pos + n_tokens)
  int64_t n_blocks;
  bool want_logits;              // logits of the last new token are needed
};

class Executor {
 public:
  virtual ~Executor() = default;
  virtual const ModelConfig& config() const = 0;
  virtual int64_t page_size() const = 0;   // tokens per KV page
  virtual int64_t num_pages() const = 0;   // KV pool capacity in pages
  // One iteration over a ragged batch; writes fp32 logits [count(want_logits), vocab] in batch order.
  virtual void step(const std::vector<SeqStep>& batch, float* logits) = 0;
  // Executors that sample on their device (only token ids cross to the host) say so here and implement
  // step_sample: the same iteration as step(), then ids[i] drawn from the i-th want_logits row with
  // rows[i] (greedy = argmax, first index on ties). The engine then never asks for host logits.
  virtual bool samples_on_device() const { return false; }
  virtual void step_sample(const std::vector<SeqStep>& batch, const std::vector<RowSampling>& rows, int32_t* ids);
  virtual void release(int64_t seq_id) {}  // the sequence finished or was preempted: its pages are free again
  virtual std::string name() const = 0;    // e.g. "cpu-fp32", "cuda-atom"
};

// How to build an executor. `device` picks the backend: "cpu" is built in; other backends (the CUDA
// executor, "cuda") register a factory (register_executor) so the engine, server and benchmark need no change.
struct ExecutorOptions {
  std::string device = "cpu";
  int64_t max_num_batched_tokens = 512;  // tokens of one step (sizes device workspaces)
  float gpu_memory_utilization = 0.9f;   // device backends: KV pool = this share of memory minus what is in use
  bool cuda_graphs = true;               // cuda: replay decode steps from CUDA graphs
  int64_t page_size = 16;
  int64_t num_pages = 0;        // 0 = cpu: enough for max_num_seqs sequences of max_model_len; cuda: from free memory
  int64_t max_num_seqs = 8;     // only used to size the default pool
  int64_t max_model_len = 0;    // only used to size the default pool (0 = the model context)
  int tp = 1;                   // tensor-parallel ranks (cpu: threads; docs/tensor-parallel.md)
};

// Builds the executor for `options.device` over a loaded model; throws atom::Error naming the
// device when it is unknown or unavailable in this build.
std::unique_ptr<Executor> make_executor(std::shared_ptr<const LlamaModel> model, const ExecutorOptions& options);

using ExecutorFactory =
    std::function<std::unique_ptr<Executor>(std::shared_ptr<const LlamaModel>, const ExecutorOptions&)>;
// Makes `device` known to make_executor (the CLI registers "cuda" when the GPU backend is built).
void register_executor(const std::string& device, ExecutorFactory factory);
std::vector<std::string> registered_devices();  // "cpu" first

}  // namespace atom::engine
