// The CPU reference executor: runs each sequence of a batch through LlamaModel::forward (fp32,
// W8A8 and Atom checkpoints alike), or through tp tensor-parallel ranks (threads, dist::
// TensorParallelModel) when tp > 1. K/V live in one KVCache per sequence (per rank) whose capacity
// is exactly the pages of its block table, so memory follows the engine's page accounting.
#pragma once
#include <memory>
#include <unordered_map>

#include "atom/dist/tensor_parallel.h"
#include "atom/engine/executor.h"
#include "atom/model/llama.h"

namespace atom::engine {

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(std::shared_ptr<const LlamaModel> model, int64_t page_size, int64_t num_pages, int tp = 1);

  const ModelConfig& config() const override { return model_->cfg; }
  int64_t page_size() const override { return page_size_; }
  int64_t num_pages() const override { return num_pages_; }
  void step(const std::vector<SeqStep>& batch, float* logits) override;
  void release(int64_t seq_id) override { caches_.erase(seq_id); }
  std::string name() const override { return name_; }  // "cpu-fp32", "cpu-<quantized linear kind>"[-tpN]

  int64_t num_live_sequences() const { return int64_t(caches_.size()); }

 private:
  std::vector<KVCache>& caches_for(const SeqStep& s);
  const ModelConfig& rank_config(size_t r) const { return tp_ ? tp_->shard(int(r)).cfg : model_->cfg; }

  std::shared_ptr<const LlamaModel> model_;
  std::unique_ptr<dist::TensorParallelModel> tp_;  // null: one rank (the model itself)
  int64_t page_size_, num_pages_;
  std::string name_;
  std::unordered_map<int64_t, std::vector<KVCache>> caches_;  // one per rank
  std::vector<float> hidden_;
};

}  // namespace atom::engine
