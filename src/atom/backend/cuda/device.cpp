#include "atom/backend/cuda/device.h"

#include <atomic>
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
  // The current device's answer (the library is built for sm_90a only), cached per device: a static of the
  // first device's would answer for every device, and cudaGetDeviceProperties is too slow for a per-call query.
  static std::atomic<int8_t> known[64] = {};  // 0: not asked yet, 1: no, 2: yes
  int dev = 0;
  ATOM_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return device_props(dev).cc_major == 9;
  int8_t v = known[dev].load(std::memory_order_relaxed);
  if (v == 0) {
    v = device_props(dev).cc_major == 9 ? 2 : 1;
    known[dev].store(v, std::memory_order_relaxed);
  }
  return v == 2;
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
