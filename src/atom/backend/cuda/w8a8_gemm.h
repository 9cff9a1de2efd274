// W8A8 baseline on the GPU (issue 4 item 4): SmoothQuant per-token × per-output-channel INT8, the
// GPU twin of quant/w8a8_linear.h. The activation side (x/smooth -> INT8 + per-token scale) is the fused
// kernel of fused_quant.h (FusedOut::i8); the GEMM is cuBLASLt INT8 (exact int32 sums) followed by one
// epilogue kernel that applies y = fp32(s_x[m]·s_w[n])·float(acc) — W8A8Linear's formula, so fp32
// outputs are bit-identical to the CPU layer given the same integers.
#pragma once
#include <cstdint>
#include <vector>

#include "atom/backend/cuda/blas_baselines.h"
#include "atom/backend/cuda/device.h"

namespace atom::quant {
struct W8A8Weights;
}

namespace atom::cuda {

struct GpuW8A8Weights {
  int64_t n = 0, k = 0;
  DeviceBuffer<int8_t> w;        // [N, K]
  DeviceBuffer<float> scale;     // [N] fp16-valued
  DeviceBuffer<float> smooth;    // [K] (empty: no smoothing)
};
// One or more CPU layers sharing an input (q/k/v, gate/up) stacked along N into one GPU GEMM. They
// must have the same K and the same smoothing vector (SmoothQuant shares it per input); throws otherwise.
void upload_w8a8_weights(const std::vector<const quant::W8A8Weights*>& parts, GpuW8A8Weights& out,
                         cudaStream_t s = nullptr);

// Epilogue outputs: exactly one of y16 (fp16 [m, N]) / y32 (fp32 [m, N]); with `accumulate`, y32 += y
// (the residual add, fp32 without FMA contraction, as cpu::add_inplace).
struct W8A8Out {
  uint16_t* y16 = nullptr;
  float* y32 = nullptr;
  bool accumulate = false;
};
// x: [m, K] INT8, sx: [m] scales (FusedOut::i8 / i8_scale). acc: int32 scratch of >= m*N.
void w8a8_gemm(BlasBaselines& blas, const int8_t* x, const float* sx, int64_t m, const GpuW8A8Weights& w,
               int32_t* acc, const W8A8Out& out, cudaStream_t s);

}  // namespace atom::cuda
