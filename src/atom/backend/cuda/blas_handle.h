// An owned cuBLAS handle whose work goes to one stream (GPTQ, the quantization backend).
#pragma once
#include "atom/backend/cuda/cuda_check.h"

namespace atom::cuda {

struct BlasHandle {
  cublasHandle_t h = nullptr;
  explicit BlasHandle(cudaStream_t s) {
    ATOM_CUBLAS_CHECK(cublasCreate(&h));
    ATOM_CUBLAS_CHECK(cublasSetStream(h, s));
  }
  ~BlasHandle() { if (h) cublasDestroy(h); }
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
};

}  // namespace atom::cuda
