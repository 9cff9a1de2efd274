#include "atom/backend/cuda/nccl/nccl_group.h"

#include <nccl.h>

#include <cstdlib>
#include <string>

#include "atom/backend/cuda/cuda_check.h"
#include "atom/core/error.h"

namespace atom::cuda {
namespace {

void nccl_check(ncclResult_t r, const char* expr) {
  if (r != ncclSuccess) fail("NCCL: {}: {} ({})", expr, ncclGetErrorString(r), ncclGetLastError(nullptr));
}
#define ATOM_NCCL_CHECK(expr) nccl_check((expr), #expr)

}  // namespace

struct NcclGroup::Comms {
  std::vector<ncclComm_t> comm;
};

NcclGroup::NcclGroup(std::vector<int> devices) : devices_(std::move(devices)), comms_(std::make_unique<Comms>()) {
  ATOM_CHECK(!devices_.empty(), "NCCL group: no devices");
  int have = 0;
  ATOM_CUDA_CHECK(cudaGetDeviceCount(&have));
  for (int d : devices_) ATOM_CHECK(d >= 0 && d < have, "NCCL group: device {} of {} visible", d, have);
  setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);
  comms_->comm.resize(devices_.size());
  ATOM_NCCL_CHECK(ncclCommInitAll(comms_->comm.data(), int(devices_.size()), devices_.data()));
}

NcclGroup::~NcclGroup() {
  for (ncclComm_t c : comms_->comm)
    if (c) ncclCommDestroy(c);  // no throwing from a destructor; NCCL reports nothing useful here anyway
}

void NcclGroup::all_reduce_sum(int rank, float* data, int64_t count, cudaStream_t stream) {
  ATOM_CHECK(rank >= 0 && rank < size(), "NCCL group: rank {} of {}", rank, size());
  ATOM_NCCL_CHECK(ncclAllReduce(data, data, size_t(count), ncclFloat32, ncclSum, comms_->comm[size_t(rank)], stream));
}

void NcclGroup::all_reduce_sum(int rank, uint16_t* data, int64_t count, cudaStream_t stream) {
  ATOM_CHECK(rank >= 0 && rank < size(), "NCCL group: rank {} of {}", rank, size());
  ATOM_NCCL_CHECK(ncclAllReduce(data, data, size_t(count), ncclFloat16, ncclSum, comms_->comm[size_t(rank)], stream));
}

}  // namespace atom::cuda
