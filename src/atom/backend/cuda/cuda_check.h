// Error checking for the CUDA backend. Every CUDA runtime / cuBLAS call and every kernel launch goes
// through one of these macros; a failure throws atom::Error("file:line: expr: cudaErrorName: string").
// Header safe for nvcc and g++; the throwing half lives in cuda_check.cpp so .cu files never include
// fmt/spdlog.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace atom::cuda {

[[noreturn]] void cuda_fail(cudaError_t err, const char* expr, const char* file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t st, const char* expr, const char* file, int line);
[[noreturn]] void check_fail(const char* msg, const char* file, int line);

}  // namespace atom::cuda

#define ATOM_CUDA_CHECK(expr)                                                            \
  do {                                                                                   \
    const cudaError_t atom_cuda_err_ = (expr);                                           \
    if (atom_cuda_err_ != cudaSuccess) ::atom::cuda::cuda_fail(atom_cuda_err_, #expr, __FILE__, __LINE__); \
  } while (0)

// After a <<<>>> launch: launch-configuration errors (and, in debug builds, asynchronous ones).
#ifdef ATOM_CUDA_SYNC_LAUNCHES
#define ATOM_CUDA_CHECK_LAUNCH()                       \
  do {                                                 \
    ATOM_CUDA_CHECK(cudaGetLastError());               \
    ATOM_CUDA_CHECK(cudaDeviceSynchronize());          \
  } while (0)
#else
#define ATOM_CUDA_CHECK_LAUNCH() ATOM_CUDA_CHECK(cudaGetLastError())
#endif

#define ATOM_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                       \
    const cublasStatus_t atom_cublas_st_ = (expr);                                           \
    if (atom_cublas_st_ != CUBLAS_STATUS_SUCCESS) ::atom::cuda::cublas_fail(atom_cublas_st_, #expr, __FILE__, __LINE__); \
  } while (0)

// Host-side precondition check usable from .cu files (message is a plain string).
#define ATOM_CUDA_REQUIRE(cond, msg)                                    \
  do {                                                                  \
    if (!(cond)) ::atom::cuda::check_fail(msg, __FILE__, __LINE__);     \
  } while (0)
