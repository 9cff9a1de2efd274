// CUDA graphs for decode steps (engine, issue 6 item 2). A decode step at batch 1 is ~14 launches per
// layer of a few µs each: the launches, not the weight bytes, set its time. A graph replays the whole
// step as one launch.
//
// Every host-side argument of a step's launches (rows T, sequences B, logits rows R, the block-table
// width, and what the kernels derive from them: GEMM tiles, split-KV counts) must be the same at replay
// as at capture, and every device input must sit at the same address. So a decode-only batch of B
// sequences is padded to a bucket Bp (the next power of two, at most max_seqs) with padding sequences
// (token 0 at position 0, in the reserved page usable_pages, logits wanted: R = T = Bp), its block-table
// width rounded up to a power of two, and the metadata uploaded into `meta` at the same offsets
// (upload_batch's layout depends only on T, B, width and R). One graph per (Bp, width) is captured on
// first use, right after an eager run of the same padded step (which also warms every lazily
// initialised kernel attribute and cuBLAS heuristic before capture); later steps replay it.
#include <map>
#include <utility>

#include "atom/backend/cuda/gpu_model_impl.h"
#include "atom/core/error.h"

namespace atom::cuda {

struct DecodeGraphs {
  std::map<std::pair<int64_t, int64_t>, cudaGraphExec_t> exec;  // (Bp, width) -> graph (argmax included)
  ~DecodeGraphs() {
    for (auto& [key, e] : exec) cudaGraphExecDestroy(e);  // no throw in a destructor
  }
};

GpuLlamaModel::Impl::Impl() = default;
GpuLlamaModel::Impl::~Impl() = default;

namespace {
int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}
}  // namespace

bool GpuLlamaModel::Impl::graph_step(const std::vector<SeqStep>& batch) {
  if (!opt.cuda_graphs) return false;
  const int64_t B = int64_t(batch.size());
  int64_t max_blocks = 1;
  for (const SeqStep& sq : batch) {
    if (sq.n_tokens != 1 || !sq.want_logits) return false;  // prefill / mixed steps run eagerly
    max_blocks = std::max(max_blocks, sq.n_blocks);
  }
  const int64_t Bp = std::min<int64_t>(pow2_at_least(B), opt.max_seqs);
  const int64_t width = std::min(pow2_at_least(max_blocks), max_blocks_cap);
  if (B == 0 || Bp > opt.max_tokens || Bp > max_logit_rows || max_blocks > max_blocks_cap) return false;

  static const int32_t pad_token = 0;
  const int32_t pad_page = int32_t(usable_pages);
  std::vector<SeqStep> padded(batch);
  for (int64_t b = B; b < Bp; ++b) padded.push_back(SeqStep{-1 - b, &pad_token, 1, 0, &pad_page, 1, true});
  upload_batch(padded, false, B, int(width));

  if (!graphs) graphs = std::make_unique<DecodeGraphs>();
  const auto key = std::make_pair(Bp, width);
  auto it = graphs->exec.find(key);
  if (it == graphs->exec.end()) {
    run_device(true);  // this step's results, eagerly; then capture the same launches for the next ones
    cudaGraph_t g = nullptr;
    ATOM_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    try {
      run_device(true);
    } catch (...) {
      cudaStreamEndCapture(stream, &g);  // leave the stream usable; the error is the launch's
      if (g) cudaGraphDestroy(g);
      throw;
    }
    ATOM_CUDA_CHECK(cudaStreamEndCapture(stream, &g));
    cudaGraphExec_t e = nullptr;
    const cudaError_t err = cudaGraphInstantiate(&e, g, 0);
    cudaGraphDestroy(g);
    ATOM_CUDA_CHECK(err);
    graphs->exec.emplace(key, e);
    return true;
  }
  ATOM_CUDA_CHECK(cudaGraphLaunch(it->second, stream));
  ++graph_replays;  // the graph always computes the argmax too (a few µs); forward copies what was asked
  return true;
}

int64_t GpuLlamaModel::graph_replays() const { return impl_->graph_replays; }
int64_t GpuLlamaModel::graphs_captured() const { return impl_->graphs ? int64_t(impl_->graphs->exec.size()) : 0; }

}  // namespace atom::cuda
