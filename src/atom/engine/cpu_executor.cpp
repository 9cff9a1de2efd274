#include "atom/engine/cpu_executor.h"

#include <algorithm>
#include <cstring>

#include "atom/core/error.h"

namespace atom::engine {

CpuExecutor::CpuExecutor(std::shared_ptr<const LlamaModel> model, int64_t page_size, int64_t num_pages, int tp)
    : model_(std::move(model)), page_size_(page_size), num_pages_(num_pages) {
  ATOM_CHECK(model_ != nullptr, "CpuExecutor: no model");
  ATOM_CHECK(page_size > 0 && num_pages > 0, "CpuExecutor: page size ({}) and page count ({}) must be positive",
             page_size, num_pages);
  // Name the mode by the model's linears (a quantized checkpoint is still a LlamaModel).
  const std::string kind = model_->layers.empty() ? "dense" : model_->layers[0].at(LinearSlot::Q).kind();
  name_ = kind == "dense" ? "cpu-fp32" : "cpu-" + kind;
  if (tp > 1) {
    tp_ = std::make_unique<dist::TensorParallelModel>(*model_, tp);
    name_ += "-tp" + std::to_string(tp);
  }
}

std::vector<KVCache>& CpuExecutor::caches_for(const SeqStep& s) {
  const int64_t end = s.start_pos + s.n_tokens;
  ATOM_CHECK(s.n_tokens > 0, "executor: sequence {} has no new tokens", s.seq_id);
  ATOM_CHECK(s.n_blocks * page_size_ >= end, "executor: sequence {} has {} pages for {} positions", s.seq_id,
             s.n_blocks, end);
  ATOM_CHECK(end <= model_->cfg.max_position_embeddings, "executor: sequence {} reaches position {} > context {}",
             s.seq_id, end, model_->cfg.max_position_embeddings);
  for (int64_t i = 0; i < s.n_blocks; ++i)
    ATOM_CHECK(s.block_table[i] >= 0 && s.block_table[i] < num_pages_, "executor: page id {} out of range",
               s.block_table[i]);
  const size_t ranks = tp_ ? size_t(tp_->tp()) : 1;
  auto it = caches_.find(s.seq_id);
  if (it == caches_.end()) {
    ATOM_CHECK(s.start_pos == 0, "executor: unknown sequence {} starts at position {}", s.seq_id, s.start_pos);
    std::vector<KVCache> fresh;
    for (size_t r = 0; r < ranks; ++r) fresh.emplace_back(rank_config(r), s.n_blocks * page_size_);
    it = caches_.emplace(s.seq_id, std::move(fresh)).first;
  }
  std::vector<KVCache>& caches = it->second;
  ATOM_CHECK(caches[0].length() == s.start_pos, "executor: sequence {} holds {} positions, step starts at {}",
             s.seq_id, caches[0].length(), s.start_pos);
  for (size_t r = 0; r < ranks; ++r) {
    KVCache& cache = caches[r];
    if (cache.capacity() >= end) continue;
    // The block table grew: move the K/V into storage the size of the new pages.
    KVCache bigger(rank_config(r), s.n_blocks * page_size_);
    const size_t n = size_t(cache.length() * cache.row_size());
    for (int l = 0; l < model_->cfg.num_layers; ++l) {
      std::memcpy(bigger.k(l), cache.k(l), n * sizeof(float));
      std::memcpy(bigger.v(l), cache.v(l), n * sizeof(float));
    }
    bigger.advance(cache.length());
    cache = std::move(bigger);
  }
  return caches;
}

void CpuExecutor::step(const std::vector<SeqStep>& batch, float* logits) {
  const int64_t H = model_->cfg.hidden_size, V = model_->cfg.vocab_size;
  int64_t out_row = 0;
  for (const SeqStep& s : batch) {
    std::vector<KVCache>& caches = caches_for(s);
    hidden_.resize(size_t(s.n_tokens * H));
    if (tp_) tp_->forward(s.tokens, s.n_tokens, caches, hidden_.data());
    else model_->forward(s.tokens, s.n_tokens, caches[0], hidden_.data());
    if (!s.want_logits) continue;
    const float* last = &hidden_[size_t((s.n_tokens - 1) * H)];
    if (tp_) tp_->logits(last, 1, logits + out_row++ * V);
    else model_->logits(last, 1, logits + out_row++ * V);
  }
}

}  // namespace atom::engine
