#include "atom/engine/executor.h"

#include <algorithm>

#include "atom/core/error.h"
#include "atom/engine/cpu_executor.h"

namespace atom::engine {

std::unique_ptr<Executor> make_executor(std::shared_ptr<const LlamaModel> model, const ExecutorOptions& o) {
  ATOM_CHECK(model != nullptr, "make_executor: no model");
  ATOM_CHECK(o.page_size > 0, "--page-size must be positive, got {}", o.page_size);
  int64_t pages = o.num_pages;
  if (pages <= 0) {
    const int64_t len = o.max_model_len > 0 ? o.max_model_len : model->cfg.max_position_embeddings;
    pages = std::max<int64_t>(o.max_num_seqs, 1) * ((len + o.page_size - 1) / o.page_size);
  }
  if (o.device == "cpu") return std::make_unique<CpuExecutor>(std::move(model), o.page_size, pages, o.tp);
  // Extension point: the CUDA executor ("cuda") is added here when the GPU backend is built.
  fail("unknown or unavailable device '{}' (this build supports: cpu)", o.device);
}

}  // namespace atom::engine
