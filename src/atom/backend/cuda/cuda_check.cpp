#include "atom/backend/cuda/cuda_check.h"

#include "atom/core/error.h"

namespace atom::cuda {

void cuda_fail(cudaError_t err, const char* expr, const char* file, int line) {
  throw Error(fmt::format("{}:{}: {}: {}: {}", file, line, expr, cudaGetErrorName(err), cudaGetErrorString(err)));
}

void cublas_fail(cublasStatus_t st, const char* expr, const char* file, int line) {
  throw Error(fmt::format("{}:{}: {}: cuBLAS status {} ({})", file, line, expr, int(st), cublasGetStatusString(st)));
}

void check_fail(const char* msg, const char* file, int line) {
  throw Error(fmt::format("{}:{}: {}", file, line, msg));
}

}  // namespace atom::cuda
