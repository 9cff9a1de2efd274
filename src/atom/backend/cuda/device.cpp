#include "atom/backend/cuda/device.h"

#include <mutex>
#include <tuple>

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

int device_sm_count() {
  int dev = 0, n = 0;
  ATOM_CUDA_CHECK(cudaGetDevice(&dev));
  ATOM_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n;
}

bool device_runs_sm90a() {
  static const bool ok = device_props().cc_major == 9;  // the library is built for sm_90a only
  return ok;
}

void allow_dynamic_smem(const void* kernel, size_t bytes) {
  int dev = 0;
  ATOM_CUDA_CHECK(cudaGetDevice(&dev));
  static std::mutex mu;
  static std::vector<std::tuple<const void*, int, size_t>> done;  // (kernel, device, bytes allowed)
  std::lock_guard<std::mutex> lock(mu);
  for (auto& [k, d, b] : done)
    if (k == kernel && d == dev) {
      if (b < bytes) {
        ATOM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
        b = bytes;
      }
      return;
    }
  ATOM_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  done.emplace_back(kernel, dev, bytes);
}

}  // namespace atom::cuda
