#include "atom/backend/cuda/cuda_executor.h"

#include <fmt/format.h>

#include <algorithm>

#include "atom/core/error.h"
#include "atom/model/llama.h"
#ifdef ATOM_WITH_NCCL
#include "atom/backend/cuda/nccl/tp_executor.h"
#endif

namespace atom::cuda {

GpuModelOptions CudaExecutorOptions::model_options() const {
  ATOM_CHECK(page_size == 16 || page_size == 32, "--device cuda: --page-size must be 16 or 32, got {}", page_size);
  ATOM_CHECK(max_num_seqs >= 1 && max_num_batched_tokens >= max_num_seqs,
             "--device cuda: need 1 <= max_num_seqs ({}) <= max_num_batched_tokens ({})", max_num_seqs,
             max_num_batched_tokens);
  ATOM_CHECK(gpu_memory_utilization > 0.0f && gpu_memory_utilization <= 1.0f,
             "--gpu-memory-utilization must be in (0, 1], got {}", gpu_memory_utilization);
  GpuModelOptions g;
  g.page_size = int(page_size);
  g.max_seqs = int(max_num_seqs);
  g.max_tokens = max_num_batched_tokens;
  g.max_logit_rows = max_num_seqs;  // one logits row per sequence (the engine asks for no more)
  if (max_model_len > 0) g.max_blocks_per_seq = (max_model_len + page_size - 1) / page_size;
  g.kv_pages = num_pages;
  g.gpu_memory_utilization = gpu_memory_utilization;
  g.cuda_graphs = cuda_graphs;
  g.kv_bits = kv_bits;
  return g;
}

CudaExecutor::CudaExecutor(std::unique_ptr<GpuLlamaModel> model) : model_(std::move(model)) {
  ATOM_CHECK(model_ != nullptr, "CudaExecutor: no model");
}

std::string CudaExecutor::name() const { return fmt::format("cuda-{}", gpu_mode_name(model_->mode())); }

void to_gpu_steps(const std::vector<engine::SeqStep>& batch, std::vector<SeqStep>& out) {
  out.clear();
  for (const engine::SeqStep& s : batch)
    out.push_back(SeqStep{s.seq_id, s.tokens, s.n_tokens, s.start_pos, s.block_table, s.n_blocks, s.want_logits});
}

void to_gpu_sampling(const std::vector<engine::RowSampling>& rows, std::vector<GpuRowSampling>& out) {
  out.clear();
  for (const engine::RowSampling& r : rows) {
    GpuRowSampling g;
    g.temperature = r.params.temperature;
    g.top_k = r.params.top_k;
    g.top_p = r.params.top_p;
    g.seed = r.params.seed;
    g.counter = r.counter;
    out.push_back(g);
  }
}

void CudaExecutor::step(const std::vector<engine::SeqStep>& batch, float* logits) {
  to_gpu_steps(batch, steps_);
  model_->step(steps_, logits);
}

void CudaExecutor::step_sample(const std::vector<engine::SeqStep>& batch, const std::vector<engine::RowSampling>& rows,
                               int32_t* ids) {
  to_gpu_steps(batch, steps_);
  to_gpu_sampling(rows, rows_);
  model_->step_sample(steps_, rows_, ids);
}

void CudaExecutor::step_greedy(const std::vector<engine::SeqStep>& batch, int32_t* ids) {
  to_gpu_steps(batch, steps_);
  model_->step_greedy(steps_, ids);
}

std::unique_ptr<CudaExecutor> make_cuda_executor(const LlamaModel& model, const CudaExecutorOptions& o) {
  return std::make_unique<CudaExecutor>(GpuLlamaModel::from_cpu(model, o.model_options()));
}

std::unique_ptr<CudaExecutor> make_synthetic_cuda_executor(const std::string& shape, GpuMode mode, uint64_t seed,
                                                           const CudaExecutorOptions& o) {
  return std::make_unique<CudaExecutor>(GpuLlamaModel::synthetic(shape, mode, seed, o.model_options()));
}

CudaExecutorOptions cuda_executor_options(const engine::ExecutorOptions& o) {
  CudaExecutorOptions c;
  c.page_size = o.page_size;
  c.num_pages = o.num_pages;
  c.gpu_memory_utilization = o.gpu_memory_utilization;
  c.max_num_seqs = o.max_num_seqs;
  c.max_num_batched_tokens = std::max(o.max_num_batched_tokens, o.max_num_seqs);
  c.max_model_len = o.max_model_len;
  c.cuda_graphs = o.cuda_graphs;
  return c;
}

void register_cuda_executor() {
  engine::register_executor("cuda", [](std::shared_ptr<const LlamaModel> model, const engine::ExecutorOptions& o)
                                        -> std::unique_ptr<engine::Executor> {
    ATOM_CHECK(device_count() > 0, "--device cuda: no CUDA device is visible");
    if (o.tp > 1) {
#ifdef ATOM_WITH_NCCL
      return make_tp_cuda_executor(*model, o.tp, cuda_executor_options(o));
#else
      fail("--device cuda --tp {}: this build has no NCCL (tensor parallelism runs on --device cpu)", o.tp);
#endif
    }
    return make_cuda_executor(*model, cuda_executor_options(o));
  });
}

}  // namespace atom::cuda
