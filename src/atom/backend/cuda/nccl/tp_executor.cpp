#include "atom/backend/cuda/nccl/tp_executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include "atom/backend/cuda/nccl/nccl_group.h"
#include "atom/core/error.h"
#include "atom/dist/tensor_parallel.h"
#include "atom/model/llama.h"

namespace atom::cuda {
namespace {

// One host thread per rank, bound to its device: run(fn) calls fn(rank) on every rank at once and waits;
// the first exception is rethrown. (Ranks must reach NCCL collectives together: they run concurrently.)
class RankThreads {
 public:
  explicit RankThreads(std::vector<int> devices) : devices_(std::move(devices)) {
    for (size_t r = 0; r < devices_.size(); ++r) threads_.emplace_back([this, r] { loop(int(r)); });
  }
  ~RankThreads() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  void run(const std::function<void(int)>& fn) {
    std::unique_lock lk(mu_);
    job_ = &fn;
    pending_ = int(devices_.size());
    error_ = nullptr;
    ++generation_;
    cv_.notify_all();
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop(int rank) {
    const cudaError_t e = cudaSetDevice(devices_[size_t(rank)]);
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
        job = job_;
      }
      std::exception_ptr err;
      try {
        ATOM_CUDA_CHECK(e);
        (*job)(rank);
      } catch (...) {
        err = std::current_exception();
      }
      std::lock_guard lk(mu_);
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_cv_.notify_one();
    }
  }
  std::vector<int> devices_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

class TpCudaExecutor final : public engine::Executor {
 public:
  // build(rank, options) makes rank r's model; it runs on rank r's thread (device r current).
  using Build = std::function<std::unique_ptr<GpuLlamaModel>(int rank, const GpuModelOptions& options)>;
  TpCudaExecutor(const ModelConfig& full, int tp, const CudaExecutorOptions& o, const Build& build) : cfg_(full) {
    dist::check_tp(full, tp);
    ATOM_CHECK(device_count() >= tp, "--device cuda --tp {}: only {} GPU(s) visible", tp, device_count());
    std::vector<int> devices(static_cast<size_t>(tp));
    for (int r = 0; r < tp; ++r) devices[size_t(r)] = r;
    nccl_ = std::make_unique<NcclGroup>(devices);
    ranks_ = std::make_unique<RankThreads>(devices);
    models_.resize(size_t(tp));
    ranks_->run([&](int r) {
      GpuModelOptions g = o.model_options();
      g.cuda_graphs = false;
      g.all_reduce = [this, r](float* p, int64_t n, cudaStream_t s) { nccl_->all_reduce_sum(r, p, n, s); };
      models_[size_t(r)] = build(r, g);
    });
    pages_ = models_[0]->num_pages();
    for (const auto& m : models_) pages_ = std::min(pages_, m->num_pages());
    scratch_ids_.resize(size_t(tp));
    scratch_logits_.resize(size_t(tp));
  }
  ~TpCudaExecutor() override {
    ranks_->run([&](int r) { models_[size_t(r)].reset(); });  // free each model on its own device thread
  }

  const ModelConfig& config() const override { return cfg_; }
  int64_t page_size() const override { return models_[0]->page_size(); }
  int64_t num_pages() const override { return pages_; }
  std::string name() const override {
    return fmt::format("cuda-{}-tp{}", gpu_mode_name(models_[0]->mode()), models_.size());
  }
  bool samples_on_device() const override { return true; }

  void step(const std::vector<engine::SeqStep>& batch, float* logits) override {
    to_gpu_steps(batch, steps_);
    const size_t rows = size_t(std::count_if(batch.begin(), batch.end(), [](const auto& s) { return s.want_logits; }));
    ranks_->run([&](int r) {
      float* out = logits;
      if (r > 0) {  // every rank computes the same logits; rank 0's are returned
        scratch_logits_[size_t(r)].resize(rows * size_t(cfg_.vocab_size));
        out = scratch_logits_[size_t(r)].data();
      }
      models_[size_t(r)]->step(steps_, out);
    });
  }

  void step_sample(const std::vector<engine::SeqStep>& batch, const std::vector<engine::RowSampling>& rows,
                   int32_t* ids) override {
    to_gpu_steps(batch, steps_);
    to_gpu_sampling(rows, rows_);
    ranks_->run([&](int r) {
      int32_t* out = ids;
      if (r > 0) {
        scratch_ids_[size_t(r)].resize(rows.size());
        out = scratch_ids_[size_t(r)].data();
      }
      models_[size_t(r)]->step_sample(steps_, rows_, out);
    });
  }

 private:
  ModelConfig cfg_;
  std::unique_ptr<NcclGroup> nccl_;
  std::unique_ptr<RankThreads> ranks_;
  std::vector<std::unique_ptr<GpuLlamaModel>> models_;
  int64_t pages_ = 0;
  std::vector<SeqStep> steps_;
  std::vector<GpuRowSampling> rows_;
  std::vector<std::vector<int32_t>> scratch_ids_;
  std::vector<std::vector<float>> scratch_logits_;
};

}  // namespace

std::unique_ptr<engine::Executor> make_tp_cuda_executor(const LlamaModel& full, int tp, const CudaExecutorOptions& o) {
  return std::make_unique<TpCudaExecutor>(full.cfg, tp, o, [&full, tp](int r, const GpuModelOptions& g) {
    const std::unique_ptr<LlamaModel> shard = dist::shard_model(full, tp, r);
    return GpuLlamaModel::from_cpu(*shard, g);
  });
}

std::unique_ptr<engine::Executor> make_synthetic_tp_cuda_executor(const std::string& shape, GpuMode mode,
                                                                  uint64_t seed, int tp, const CudaExecutorOptions& o) {
  return std::make_unique<TpCudaExecutor>(GpuLlamaModel::named_shape(shape), tp, o,
                                          [&](int r, const GpuModelOptions& g) {
                                            return GpuLlamaModel::synthetic(shape, mode, seed + uint64_t(r), g, tp);
                                          });
}

}  // namespace atom::cuda
