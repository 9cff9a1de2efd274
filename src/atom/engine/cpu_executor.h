// The CPU reference executor: runs each sequence of a batch through LlamaModel::forward (fp32,
// W8A8 and Atom checkpoints alike). K/V live in one KVCache per sequence whose capacity is
// exactly the pages of its block table, so memory follows the engine's page accounting.
#pragma once
#include <memory>
#include <unordered_map>

#include "atom/engine/executor.h"
#include "atom/model/llama.h"

namespace atom::engine {

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(std::shared_ptr<const LlamaModel> model, int64_t page_size, int64_t num_pages);

  const ModelConfig& config() const override { return model_->cfg; }
  int64_t page_size() const override { return page_size_; }
  int64_t num_pages() const override { return num_pages_; }
  void step(const std::vector<SeqStep>& batch, float* logits) override;
  void release(int64_t seq_id) override { caches_.erase(seq_id); }
  std::string name() const override { return name_; }  // "cpu-fp32", "cpu-<quantized linear kind>"

  int64_t num_live_sequences() const { return int64_t(caches_.size()); }

 private:
  KVCache& cache_for(const SeqStep& s);

  std::shared_ptr<const LlamaModel> model_;
  int64_t page_size_, num_pages_;
  std::string name_;
  std::unordered_map<int64_t, KVCache> caches_;
  std::vector<float> hidden_;
};

}  // namespace atom::engine
