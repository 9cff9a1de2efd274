// The engine's executor on the GPU (issue 6 item 2): engine::Executor over a GpuLlamaModel. The engine
// keeps scheduling and page accounting; this runs each iteration's ragged batch on the GPU with the
// engine's page ids, the KV pool sized from free memory (gpu_memory_utilization), decode steps replayed
// from CUDA graphs, and greedy sampling on the GPU (step_greedy) so only token ids cross to the host.
// Lives in atom_cuda: atom_lib stays CUDA-free, and the CLI calls make_cuda_executor under ATOM_WITH_CUDA.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atom/backend/cuda/gpu_model.h"
#include "atom/engine/executor.h"

namespace atom::cuda {

struct CudaExecutorOptions {
  int64_t page_size = 16;
  int64_t num_pages = 0;               // 0: sized from free memory
  float gpu_memory_utilization = 0.9f;
  int64_t max_num_seqs = 256;          // sequences of one step
  int64_t max_num_batched_tokens = 4096;  // tokens of one step
  int64_t max_model_len = 0;           // 0: the model's context
  bool cuda_graphs = true;
  int kv_bits = 0;                     // 0: the mode's
  GpuModelOptions model_options() const;
};

// The engine's batch and sampling rows in the GPU model's types.
void to_gpu_steps(const std::vector<engine::SeqStep>& batch, std::vector<SeqStep>& out);
void to_gpu_sampling(const std::vector<engine::RowSampling>& rows, std::vector<GpuRowSampling>& out);

class CudaExecutor final : public engine::Executor {
 public:
  explicit CudaExecutor(std::unique_ptr<GpuLlamaModel> model);
  const ModelConfig& config() const override { return model_->config(); }
  int64_t page_size() const override { return model_->page_size(); }
  int64_t num_pages() const override { return model_->num_pages(); }
  void step(const std::vector<engine::SeqStep>& batch, float* logits) override;
  bool samples_on_device() const override { return true; }
  void step_sample(const std::vector<engine::SeqStep>& batch, const std::vector<engine::RowSampling>& rows,
                   int32_t* ids) override;
  std::string name() const override;
  // The same iteration with greedy sampling on the GPU: ids[i] = argmax of the i-th want_logits row.
  void step_greedy(const std::vector<engine::SeqStep>& batch, int32_t* ids);
  GpuLlamaModel& model() { return *model_; }

 private:
  std::unique_ptr<GpuLlamaModel> model_;
  std::vector<SeqStep> steps_;
  std::vector<GpuRowSampling> rows_;
};

// engine::make_executor's options for --device cuda.
CudaExecutorOptions cuda_executor_options(const engine::ExecutorOptions& o);
// Makes "cuda" known to engine::make_executor (atom serve / bench serve --device cuda; with --tp N > 1 the
// tensor-parallel executor over N GPUs, nccl/tp_executor.h, when NCCL is built). Idempotent.
void register_cuda_executor();

// From a loaded CPU model (the mode follows its linears: dense -> fp16, W8A8 -> w8a8, Atom -> atom).
std::unique_ptr<CudaExecutor> make_cuda_executor(const LlamaModel& model, const CudaExecutorOptions& o);
// A synthetic model of a named shape (GpuLlamaModel::named_shape) in `mode`, weights from `seed`.
std::unique_ptr<CudaExecutor> make_synthetic_cuda_executor(const std::string& shape, GpuMode mode, uint64_t seed,
                                                           const CudaExecutorOptions& o);

}  // namespace atom::cuda
