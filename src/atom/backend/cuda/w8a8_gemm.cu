// W8A8 GEMM (w8a8_gemm.h): cuBLASLt INT8 -> int32, then the scale epilogue (4 outputs per thread).
#include <cuda_fp16.h>

#include "atom/backend/cuda/w8a8_gemm.h"

namespace atom::cuda {
namespace {

// y = (sx·sw)·float(acc), products rounded separately (no FMA), as the CPU int_gemm promotion.
template <int MODE>  // 0: fp16 store, 1: fp32 store, 2: fp32 accumulate
__global__ void w8a8_epilogue_kernel(const int32_t* __restrict__ acc, const float* __restrict__ sx,
                                     const float* __restrict__ sw, void* __restrict__ y, int64_t m, int64_t n) {
  const int64_t total = m * n;
  for (int64_t i = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * 4; i < total;
       i += int64_t(gridDim.x) * blockDim.x * 4) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int64_t idx = i + e;
      if (idx >= total) break;
      const int64_t r = idx / n, c = idx % n;
      const float v = __fmul_rn(__fmul_rn(sx[r], sw[c]), float(acc[idx]));
      if constexpr (MODE == 0) static_cast<__half*>(y)[idx] = __float2half_rn(v);
      if constexpr (MODE == 1) static_cast<float*>(y)[idx] = v;
      if constexpr (MODE == 2) static_cast<float*>(y)[idx] = __fadd_rn(static_cast<float*>(y)[idx], v);
    }
  }
}

}  // namespace

void w8a8_gemm(BlasBaselines& blas, const int8_t* x, const float* sx, int64_t m, const GpuW8A8Weights& w,
               int32_t* acc, const W8A8Out& out, cudaStream_t s) {
  ATOM_CUDA_REQUIRE((out.y16 != nullptr) != (out.y32 != nullptr), "w8a8_gemm: exactly one of y16 / y32");
  ATOM_CUDA_REQUIRE(!out.accumulate || out.y32, "w8a8_gemm: accumulate needs an fp32 output");
  ATOM_CUDA_REQUIRE(m < (int64_t(1) << 31) && w.n > 0 && w.k > 0, "w8a8_gemm: bad shape");
  if (m == 0) return;
  blas.gemm_s8s32(x, w.w.data(), acc, int(m), int(w.n), int(w.k), s);
  const int64_t total = m * w.n;
  const unsigned blocks = unsigned(std::min<int64_t>((total / 4 + 255) / 256 + 1, 132 * 8));
  if (out.y16)
    w8a8_epilogue_kernel<0><<<blocks, 256, 0, s>>>(acc, sx, w.scale.data(), out.y16, m, w.n);
  else if (!out.accumulate)
    w8a8_epilogue_kernel<1><<<blocks, 256, 0, s>>>(acc, sx, w.scale.data(), out.y32, m, w.n);
  else
    w8a8_epilogue_kernel<2><<<blocks, 256, 0, s>>>(acc, sx, w.scale.data(), out.y32, m, w.n);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace atom::cuda
