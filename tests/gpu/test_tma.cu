// TMA primitives (ptx.cuh, tma.h) against the layouts the GEMM assumes: a 2D tensor copy lands each byte
// where sw64_off / sw128_off say, rows and columns outside the tensor arrive as zeros, and the mbarrier
// completes on the copy's bytes. Random source bytes per run; the tile is read back from shared memory as is.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <vector>

#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/ptx.cuh"
#include "atom/backend/cuda/tma.h"

namespace {

using namespace atom::cuda;

__global__ void tma_tile_kernel(const __grid_constant__ CUtensorMap map, int c0, int c1, int box_bytes, uint8_t* out) {
  extern __shared__ uint8_t raw[];
  __shared__ uint64_t bar;
  uint8_t* tile = raw + ((1024 - (ptx::smem_addr(raw) & 1023)) & 1023);
  if (threadIdx.x == 0) {
    ptx::mbar_init(&bar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    ptx::mbar_arrive_expect_tx(&bar, uint32_t(box_bytes));
    ptx::tma_load_2d(tile, &map, c0, c1, &bar);
  }
  ptx::mbar_wait(&bar, 0);
  for (int i = threadIdx.x; i < box_bytes; i += blockDim.x) out[i] = tile[i];
}

// Host copies of the device offset functions (the device ones are what the kernels use; these must agree).
int host_off(TmaSwizzle sw, int r, int c) {
  if (sw == TmaSwizzle::k64B) return r * 64 + (((c >> 4) ^ ((r >> 1) & 3)) << 4) + (c & 15);
  return r * 128 + (((c >> 4) ^ (r & 7)) << 4) + (c & 15);
}

// One [rows, cols] byte tensor with `pitch`, one box at (c0, c1), checked byte by byte.
void check_tile(int rows, int cols, int pitch, int box_cols, int box_rows, TmaSwizzle sw, int c0, int c1) {
  SCOPED_TRACE("tensor " + std::to_string(rows) + " x " + std::to_string(cols) + " box at (" + std::to_string(c0) +
               ", " + std::to_string(c1) + ")");
  std::random_device rd;
  std::mt19937 rng(rd());
  std::vector<uint8_t> src(size_t(rows) * pitch);
  for (auto& b : src) b = uint8_t(1 + rng() % 255);  // never 0: a zero in the tile means "filled"
  uint8_t *d_src = nullptr, *d_out = nullptr;
  const int box_bytes = box_cols * box_rows;
  ATOM_CUDA_CHECK(cudaMalloc(&d_src, src.size()));
  ATOM_CUDA_CHECK(cudaMalloc(&d_out, box_bytes));
  ATOM_CUDA_CHECK(cudaMemcpy(d_src, src.data(), src.size(), cudaMemcpyHostToDevice));
  ATOM_CUDA_CHECK(cudaMemset(d_out, 0xEE, box_bytes));  // poisoned
  CUtensorMap map;
  tma_map_2d_u8(&map, d_src, uint64_t(cols), uint64_t(rows), uint64_t(pitch), uint32_t(box_cols), uint32_t(box_rows), sw);
  const int smem = box_bytes + 1024;
  ATOM_CUDA_CHECK(cudaFuncSetAttribute(tma_tile_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  tma_tile_kernel<<<1, 128, smem>>>(map, c0, c1, box_bytes, d_out);
  ATOM_CUDA_CHECK(cudaGetLastError());
  std::vector<uint8_t> out(box_bytes);
  ATOM_CUDA_CHECK(cudaMemcpy(out.data(), d_out, box_bytes, cudaMemcpyDeviceToHost));
  cudaFree(d_src);
  cudaFree(d_out);
  int bad = 0;
  for (int r = 0; r < box_rows; ++r)
    for (int c = 0; c < box_cols; ++c) {
      const int gr = c1 + r, gc = c0 + c;
      const uint8_t want = (gr < rows && gc < cols) ? src[size_t(gr) * pitch + gc] : 0;
      const uint8_t got = out[host_off(sw, r, c)];
      if (got != want && bad++ < 5) ADD_FAILURE() << "row " << r << " col " << c << ": got " << int(got) << ", want " << int(want);
    }
  EXPECT_EQ(bad, 0);
}

TEST(GpuTma, SwizzledTilesLandWhereTheGemmReadsThem) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU tests run in scripts/gpu-check.sh on the device machine";
  // the GEMM's packed tiles: 64-byte group rows, 64B swizzle; the last row tile ragged (rows 128..199 of 200)
  check_tile(200, 3 * 64, 3 * 64, 64, 128, TmaSwizzle::k64B, 64, 128);
  check_tile(300, 5 * 64, 5 * 64, 64, 128, TmaSwizzle::k64B, 4 * 64, 0);
  // the outlier A rows: 128-byte box over O = 48 columns (pitch 48), 128B swizzle; ragged in both dimensions
  check_tile(100, 48, 48, 128, 128, TmaSwizzle::k128B, 0, 0);
  check_tile(260, 128, 128, 128, 128, TmaSwizzle::k128B, 0, 256);
}

TEST(GpuTma, RejectsAMisalignedBase) {
  if (device_count() == 0) GTEST_SKIP() << "no CUDA device: GPU tests run in scripts/gpu-check.sh on the device machine";
  uint8_t* d = nullptr;
  ATOM_CUDA_CHECK(cudaMalloc(&d, 4096));
  CUtensorMap map;
  EXPECT_THROW(tma_map_2d_u8(&map, d + 8, 64, 16, 64, 64, 16, TmaSwizzle::k64B), std::exception);
  EXPECT_THROW(tma_map_2d_u8(&map, d, 64, 16, 72, 64, 16, TmaSwizzle::k64B), std::exception);  // pitch % 16 != 0
  cudaFree(d);
}

}  // namespace
