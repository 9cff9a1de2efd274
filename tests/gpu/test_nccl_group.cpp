// NcclGroup on every visible GPU (one GPU on the single-GPU machines: the group still initializes and
// the all-reduce is the identity; on 2-8 GPUs it sums). Skips without a GPU or without NCCL.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "atom/backend/cuda/cuda_check.h"
#include "atom/backend/cuda/device.h"
#if ATOM_WITH_NCCL
#include "atom/backend/cuda/nccl/nccl_group.h"
#endif

namespace {

TEST(NcclGroup, AllReduceSumsOverEveryGpu) {
#if !ATOM_WITH_NCCL
  GTEST_SKIP() << "built without NCCL";
#else
  const int n = atom::cuda::device_count();
  if (n == 0) GTEST_SKIP() << "no CUDA device: GPU tests run in scripts/gpu-check.sh on the device machine";
  std::vector<int> devices;
  for (int d = 0; d < n && d < 8; ++d) devices.push_back(d);
  atom::cuda::NcclGroup group(devices);
  const int64_t count = (1 << 20) + 7;  // odd size: no kernel may assume a multiple of anything
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE(seed);
  // fp32: random values; fp16: small integers, so every partial sum is exact in fp16.
  std::vector<std::vector<float>> f32(devices.size());
  std::vector<std::vector<uint16_t>> f16(devices.size());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_int_distribution<int> id(-8, 8);
  auto half_bits = [](int v) {  // small integer -> IEEE fp16 bits
    if (v == 0) return uint16_t(0);
    const uint16_t sign = v < 0 ? 0x8000 : 0;
    int a = std::abs(v), e = 0;
    while ((a >> e) > 1) ++e;
    return uint16_t(sign | ((e + 15) << 10) | ((a << (10 - e)) & 0x3ff));
  };
  std::vector<double> want32(size_t(count), 0.0);
  std::vector<int> want16(size_t(count), 0);
  for (size_t r = 0; r < devices.size(); ++r) {
    f32[r].resize(size_t(count));
    f16[r].resize(size_t(count));
    for (int64_t i = 0; i < count; ++i) {
      f32[r][size_t(i)] = nd(rng);
      const int v = id(rng);
      f16[r][size_t(i)] = half_bits(v);
      want32[size_t(i)] += f32[r][size_t(i)];
      want16[size_t(i)] += v;
    }
  }
  std::vector<std::thread> threads;
  for (size_t r = 0; r < devices.size(); ++r)
    threads.emplace_back([&, r] {
      ATOM_CUDA_CHECK(cudaSetDevice(devices[r]));
      cudaStream_t s;
      ATOM_CUDA_CHECK(cudaStreamCreate(&s));
      float* d32;
      uint16_t* d16;
      ATOM_CUDA_CHECK(cudaMalloc(&d32, size_t(count) * sizeof(float)));
      ATOM_CUDA_CHECK(cudaMalloc(&d16, size_t(count) * sizeof(uint16_t)));
      ATOM_CUDA_CHECK(cudaMemcpy(d32, f32[r].data(), size_t(count) * sizeof(float), cudaMemcpyHostToDevice));
      ATOM_CUDA_CHECK(cudaMemcpy(d16, f16[r].data(), size_t(count) * sizeof(uint16_t), cudaMemcpyHostToDevice));
      group.all_reduce_sum(int(r), d32, count, s);
      group.all_reduce_sum(int(r), d16, count, s);
      ATOM_CUDA_CHECK(cudaStreamSynchronize(s));
      ATOM_CUDA_CHECK(cudaMemcpy(f32[r].data(), d32, size_t(count) * sizeof(float), cudaMemcpyDeviceToHost));
      ATOM_CUDA_CHECK(cudaMemcpy(f16[r].data(), d16, size_t(count) * sizeof(uint16_t), cudaMemcpyDeviceToHost));
      ATOM_CUDA_CHECK(cudaFree(d32));
      ATOM_CUDA_CHECK(cudaFree(d16));
      ATOM_CUDA_CHECK(cudaStreamDestroy(s));
    });
  for (auto& t : threads) t.join();
  const double tol = 1e-6 * double(devices.size());  // fp32 sums of N unit normals, any order
  for (size_t r = 0; r < devices.size(); ++r)
    for (int64_t i = 0; i < count; ++i) {
      ASSERT_NEAR(f32[r][size_t(i)], want32[size_t(i)], tol * 8) << "rank " << r << " i " << i;
      ASSERT_EQ(f16[r][size_t(i)], half_bits(want16[size_t(i)])) << "rank " << r << " i " << i;
    }
#endif
}

}  // namespace
