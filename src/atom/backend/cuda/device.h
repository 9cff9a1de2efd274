// CUDA backend core: device properties, streams, events and an RAII device buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "atom/backend/cuda/cuda_check.h"

namespace atom::cuda {

struct DeviceProps {
  int device = -1;
  std::string name;
  int cc_major = 0, cc_minor = 0, sm_count = 0;
  size_t global_mem = 0, l2_bytes = 0, smem_per_block_optin = 0;
  int mem_bus_bits = 0;
};

// Number of visible CUDA devices; 0 (never throws) when there is no driver or device.
int device_count() noexcept;
// Properties of `device` (default: the current one).
DeviceProps device_props(int device = -1);
// Streaming multiprocessors of the current device (one attribute query: cheap enough for every launch, and
// right when tensor-parallel ranks drive different devices from one process).
int device_sm_count();
// The current device can run the library's sm_90a kernels (wgmma): compute capability 9.x, asked once.
bool device_runs_sm90a();
// Lets `kernel` launch with up to `bytes` of dynamic shared memory on the current device
// (cudaFuncAttributeMaxDynamicSharedMemorySize). The driver call happens once per kernel, device and
// size, so it is cheap on every launch and right when tensor-parallel ranks share a kernel.
void allow_dynamic_smem(const void* kernel, size_t bytes);

class Stream {
 public:
  Stream() { ATOM_CUDA_CHECK(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { if (s_) cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  operator cudaStream_t() const { return s_; }
  void sync() const { ATOM_CUDA_CHECK(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event() { ATOM_CUDA_CHECK(cudaEventCreate(&e_)); }
  ~Event() { if (e_) cudaEventDestroy(e_); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(cudaStream_t s) { ATOM_CUDA_CHECK(cudaEventRecord(e_, s)); }
  // Milliseconds from `start` to this event (both recorded; synchronizes on this one).
  float since(const Event& start) const {
    ATOM_CUDA_CHECK(cudaEventSynchronize(e_));
    float ms = 0;
    ATOM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.e_, e_));
    return ms;
  }
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// Owning device allocation of n elements of T (cudaMalloc; never managed memory).
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t n) { resize(n); }
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) { reset(); p_ = std::exchange(o.p_, nullptr); n_ = std::exchange(o.n_, 0); }
    return *this;
  }
  void resize(size_t n) {  // discards the contents
    if (n == n_) return;
    reset();
    if (n) ATOM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
    n_ = n;
  }
  void reset() {
    if (p_) cudaFree(p_);
    p_ = nullptr;
    n_ = 0;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  size_t bytes() const { return n_ * sizeof(T); }
  void upload(const T* src, size_t n, cudaStream_t s = nullptr) {
    resize(n);
    if (n) ATOM_CUDA_CHECK(cudaMemcpyAsync(p_, src, n * sizeof(T), cudaMemcpyHostToDevice, s));
  }
  void upload(const std::vector<T>& v, cudaStream_t s = nullptr) { upload(v.data(), v.size(), s); }
  std::vector<T> download(cudaStream_t s = nullptr) const {
    std::vector<T> v(n_);
    if (n_) {
      ATOM_CUDA_CHECK(cudaMemcpyAsync(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost, s));
      ATOM_CUDA_CHECK(cudaStreamSynchronize(s));
    }
    return v;
  }
  // Fills every byte with `byte` (poisoning outputs before a test run).
  void fill_bytes(int byte, cudaStream_t s = nullptr) {
    if (n_) ATOM_CUDA_CHECK(cudaMemsetAsync(p_, byte, n_ * sizeof(T), s));
  }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace atom::cuda
