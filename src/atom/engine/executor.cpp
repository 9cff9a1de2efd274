#include "atom/engine/executor.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "atom/core/error.h"
#include "atom/engine/cpu_executor.h"

namespace atom::engine {

namespace {
struct Registry {
  std::mutex mu;
  std::map<std::string, ExecutorFactory> factories;
};
Registry& registry() {
  static Registry r;
  return r;
}
}  // namespace

void Executor::step_sample(const std::vector<SeqStep>&, const std::vector<RowSampling>&, int32_t*) {
  fail("executor {} does not sample on its device", name());
}

void register_executor(const std::string& device, ExecutorFactory factory) {
  ATOM_CHECK(device != "cpu" && factory, "register_executor: bad registration for '{}'", device);
  std::lock_guard lk(registry().mu);
  registry().factories[device] = std::move(factory);
}

std::vector<std::string> registered_devices() {
  std::vector<std::string> d{"cpu"};
  std::lock_guard lk(registry().mu);
  for (const auto& [name, f] : registry().factories) d.push_back(name);
  return d;
}

std::unique_ptr<Executor> make_executor(std::shared_ptr<const LlamaModel> model, const ExecutorOptions& o) {
  ATOM_CHECK(model != nullptr, "make_executor: no model");
  ATOM_CHECK(o.page_size > 0, "--page-size must be positive, got {}", o.page_size);
  if (o.device != "cpu") {
    ExecutorFactory f;
    {
      std::lock_guard lk(registry().mu);
      if (auto it = registry().factories.find(o.device); it != registry().factories.end()) f = it->second;
    }
    if (f) return f(std::move(model), o);
    std::string known;
    for (const std::string& d : registered_devices()) known += (known.empty() ? "" : ", ") + d;
    fail("unknown or unavailable device '{}' (this build supports: {})", o.device, known);
  }
  int64_t pages = o.num_pages;
  if (pages <= 0) {
    const int64_t len = o.max_model_len > 0 ? o.max_model_len : model->cfg.max_position_embeddings;
    pages = std::max<int64_t>(o.max_num_seqs, 1) * ((len + o.page_size - 1) / o.page_size);
  }
  return std::make_unique<CpuExecutor>(std::move(model), o.page_size, pages, o.tp);
}

}  // namespace atom::engine
