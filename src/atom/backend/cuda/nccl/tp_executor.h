// Tensor parallelism on the GPUs of one host (issue 7; docs/tensor-parallel.md): the engine's executor over
// N ranks, rank r a GpuLlamaModel on device r built from dist::shard_model(full, N, r) — its heads, KV heads
// and FFN channels, its K-segment of o_proj / down — with the row-parallel partial sums all-reduced over NCCL
// (GpuModelOptions::all_reduce). One host thread per rank drives its device; every rank runs every step
// (the same batch and page ids: each rank's KV pool holds its heads of the same pages) and computes the same
// logits, rank 0's ids / logits are returned. CUDA graphs are off under TP for now (NCCL calls are
// capturable; not yet measured). Built only with NCCL (ATOM_WITH_NCCL).
#pragma once
#include <memory>

#include "atom/backend/cuda/cuda_executor.h"

namespace atom::cuda {

// tp ranks on devices 0..tp-1; throws atom::Error when fewer GPUs are visible or the model does not split.
std::unique_ptr<engine::Executor> make_tp_cuda_executor(const LlamaModel& full, int tp, const CudaExecutorOptions& o);
// Synthetic weights of a named shape (GpuLlamaModel::synthetic), rank r's shard from seed + r: speed work.
std::unique_ptr<engine::Executor> make_synthetic_tp_cuda_executor(const std::string& shape, GpuMode mode,
                                                                  uint64_t seed, int tp, const CudaExecutorOptions& o);

}  // namespace atom::cuda
