// Library baselines measured next to the Atom GEMM (issue 4): cuBLAS FP16, cuBLASLt INT8 (W8A8 with
// per-token x per-output-channel scales applied by a small epilogue kernel) and cuBLASLt FP8 e4m3
// (per-tensor scale 1). All compute y[M,N] = x[M,K] · W[N,K]ᵀ with row-major x, W, y.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "atom/backend/cuda/device.h"

namespace atom::cuda {

class BlasBaselines {
 public:
  BlasBaselines();
  ~BlasBaselines();
  BlasBaselines(const BlasBaselines&) = delete;
  BlasBaselines& operator=(const BlasBaselines&) = delete;

  void gemm_fp16(const uint16_t* x, const uint16_t* w, uint16_t* y, int m, int n, int k, cudaStream_t s);
  // Same with fp32 output y = x·Wᵀ + beta·y (beta 1: accumulate into an fp32 residual stream / logits).
  void gemm_fp16_f32(const uint16_t* x, const uint16_t* w, float* y, int m, int n, int k, float beta, cudaStream_t s);
  // acc[m, n] = x · Wᵀ exactly (int32), the cuBLASLt INT8 GEMM alone (w8a8_gemm.h adds the epilogue).
  void gemm_s8s32(const int8_t* x, const int8_t* w, int32_t* acc, int m, int n, int k, cudaStream_t s);
  // acc: int32 scratch [m, n]; y = fp16(float(acc) * (sx[m]*sw[n])).
  void gemm_int8(const int8_t* x, const int8_t* w, const float* sx, const float* sw, int32_t* acc, uint16_t* y,
                 int m, int n, int k, cudaStream_t s);
  // x, w: e4m3 bytes; y fp16.
  void gemm_fp8(const uint8_t* x, const uint8_t* w, uint16_t* y, int m, int n, int k, cudaStream_t s);

 private:
  struct Plan;
  Plan& plan(int kind, int m, int n, int k);
  cublasHandle_t handle_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  DeviceBuffer<uint8_t> workspace_;
  std::map<std::tuple<int, int, int, int>, std::unique_ptr<Plan>> plans_;
};

}  // namespace atom::cuda
