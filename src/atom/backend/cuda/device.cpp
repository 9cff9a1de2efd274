#include "atom/backend/cuda/device.h"

namespace atom::cuda {

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

DeviceProps device_props(int device) {
  if (device < 0) ATOM_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp p{};
  ATOM_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  DeviceProps d;
  d.device = device;
  d.name = p.name;
  d.cc_major = p.major;
  d.cc_minor = p.minor;
  d.sm_count = p.multiProcessorCount;
  d.global_mem = p.totalGlobalMem;
  d.l2_bytes = size_t(p.l2CacheSize);
  d.smem_per_block_optin = p.sharedMemPerBlockOptin;
  d.mem_bus_bits = p.memoryBusWidth;
  return d;
}

}  // namespace atom::cuda
