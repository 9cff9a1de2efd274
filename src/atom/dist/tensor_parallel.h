// Megatron-style tensor parallelism of the Llama model (docs/tensor-parallel.md):
//   column-parallel  q/k/v (by heads; kv heads split too), gate/up (by FFN channels): rank r keeps
//                    its rows; the input (the normed residual) is replicated, so Atom quantizes it the
//                    same way on every rank;
//   row-parallel     o_proj (the rank's heads), down_proj (the rank's FFN channels): rank r keeps its
//                    K-slice and all-reduces the partial output before the residual add. A quantized
//                    row-parallel linear must have been quantized in K-segments (tp_segments, each
//                    with its own reorder/outliers/groups), one or more per rank;
//   replicated       embeddings, norms, lm_head.
// The CPU reference runs the ranks as threads (ThreadGroup); the GPU engine runs one per device over
// NCCL with the same shards.
#pragma once
#include <memory>
#include <vector>

#include "atom/dist/communicator.h"
#include "atom/model/llama.h"

namespace atom::dist {

// Throws atom::Error naming the reason when `cfg` cannot be split over tp ranks.
void check_tp(const ModelConfig& cfg, int tp);
// The shape one rank sees: heads, kv heads and FFN channels divided by tp.
ModelConfig shard_config(const ModelConfig& full, int tp);
// Rank `rank`'s shard of `full` (weights copied). Its reduce_partial is left empty.
std::unique_ptr<LlamaModel> shard_model(const LlamaModel& full, int tp, int rank);

// All ranks of a model in one process: the CPU reference of tensor parallelism.
class TensorParallelModel {
 public:
  TensorParallelModel(const LlamaModel& full, int tp);
  int tp() const { return int(shards_.size()); }
  const ModelConfig& config() const { return full_cfg_; }
  const LlamaModel& shard(int r) const { return *shards_[size_t(r)]; }
  // One KV cache per rank (each holds that rank's kv heads).
  std::vector<KVCache> make_caches(int64_t capacity) const;
  // LlamaModel::forward over all ranks: hidden_out [n, hidden] (identical on every rank; rank 0's).
  void forward(const int32_t* tokens, int64_t n, std::vector<KVCache>& caches, float* hidden_out);
  void logits(const float* hidden, int64_t n, float* out) const { shards_[0]->logits(hidden, n, out); }

 private:
  ModelConfig full_cfg_;
  std::vector<std::unique_ptr<LlamaModel>> shards_;
  ThreadGroup group_;
};

}  // namespace atom::dist
