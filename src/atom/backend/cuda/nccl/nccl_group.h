// Tensor-parallel collectives between the GPUs of one host over NCCL: one rank per device, each
// driven by its own host thread (the engine's layout; a multi-process launcher can reuse the same
// calls with ncclCommInitRank). Built only when NCCL is found (ATOM_WITH_NCCL).
//
// NVLink multicast (NVLS) stays off: the lent machines require NCCL_NVLS_ENABLE=0 because a program
// using it can take the host's shared GPUs out of service. The constructor sets it unless the
// environment already does.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace atom::cuda {

class NcclGroup {
 public:
  // One communicator per listed device (ncclCommInitAll). Throws atom::Error on NCCL/CUDA failures.
  explicit NcclGroup(std::vector<int> devices);
  ~NcclGroup();
  NcclGroup(const NcclGroup&) = delete;
  NcclGroup& operator=(const NcclGroup&) = delete;

  int size() const { return int(devices_.size()); }
  int device(int rank) const { return devices_[size_t(rank)]; }
  // In place on rank `rank`'s device buffer, enqueued on `stream` (a stream of that device). Every
  // rank must make the same calls in the same order (NCCL's rule). fp32 or fp16 (uint16_t bits).
  void all_reduce_sum(int rank, float* data, int64_t count, cudaStream_t stream);
  void all_reduce_sum(int rank, uint16_t* data, int64_t count, cudaStream_t stream);

 private:
  struct Comms;
  std::vector<int> devices_;
  std::unique_ptr<Comms> comms_;
};

}  // namespace atom::cuda
