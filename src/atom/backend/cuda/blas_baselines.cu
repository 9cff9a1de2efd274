#include <cuda_fp16.h>

#include "atom/backend/cuda/blas_baselines.h"

namespace atom::cuda {
namespace {

constexpr size_t kWorkspace = size_t(64) << 20;

__global__ void int8_epilogue_kernel(const int32_t* __restrict__ acc, const float* __restrict__ sx,
                                     const float* __restrict__ sw, __half* __restrict__ y, int m, int n) {
  const int64_t total = int64_t(m) * n;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int r = int(i / n), c = int(i % n);
    y[i] = __float2half_rn(float(acc[i]) * (sx[r] * sw[c]));
  }
}

}  // namespace

struct BlasBaselines::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};

BlasBaselines::BlasBaselines() {
  ATOM_CUBLAS_CHECK(cublasCreate(&handle_));
  ATOM_CUBLAS_CHECK(cublasLtCreate(&lt_));
  workspace_.resize(kWorkspace);
  ATOM_CUBLAS_CHECK(cublasSetWorkspace(handle_, workspace_.data(), workspace_.bytes()));
}

BlasBaselines::~BlasBaselines() {
  plans_.clear();
  if (lt_) cublasLtDestroy(lt_);
  if (handle_) cublasDestroy(handle_);
}

// kind 1: INT8 (s32 out), kind 2: FP8 e4m3 (fp16 out). Column-major view: D[n, m] = Wᵀ(op T) · x.
BlasBaselines::Plan& BlasBaselines::plan(int kind, int m, int n, int k) {
  auto& slot = plans_[{kind, m, n, k}];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  const bool i8 = kind == 1;
  const cudaDataType_t in_t = i8 ? CUDA_R_8I : CUDA_R_8F_E4M3, out_t = i8 ? CUDA_R_32I : CUDA_R_16F;
  ATOM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F,
                                             i8 ? CUDA_R_32I : CUDA_R_32F));
  const cublasOperation_t opT = CUBLAS_OP_T, opN = CUBLAS_OP_N;
  ATOM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opT, sizeof(opT)));
  ATOM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opN, sizeof(opN)));
  ATOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, in_t, k, n, k));
  ATOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, in_t, k, m, k));
  ATOM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->c, out_t, n, m, n));
  cublasLtMatmulPreference_t pref = nullptr;
  ATOM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = workspace_.bytes();
  ATOM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  ATOM_CUBLAS_CHECK(st);
  ATOM_CUDA_REQUIRE(found > 0, "cuBLASLt: no algorithm for this INT8/FP8 GEMM");
  p->algo = res.algo;
  slot = std::move(p);
  return *slot;
}

void BlasBaselines::gemm_fp16(const uint16_t* x, const uint16_t* w, uint16_t* y, int m, int n, int k, cudaStream_t s) {
  ATOM_CUBLAS_CHECK(cublasSetStream(handle_, s));
  const float alpha = 1.0f, beta = 0.0f;
  ATOM_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F, k,
                                 &beta, y, CUDA_R_16F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void BlasBaselines::gemm_fp16_f32(const uint16_t* x, const uint16_t* w, float* y, int m, int n, int k, float beta,
                                  cudaStream_t s) {
  ATOM_CUBLAS_CHECK(cublasSetStream(handle_, s));
  const float alpha = 1.0f;
  ATOM_CUBLAS_CHECK(cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, w, CUDA_R_16F, k, x, CUDA_R_16F, k,
                                 &beta, y, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void BlasBaselines::gemm_s8s32(const int8_t* x, const int8_t* w, int32_t* acc, int m, int n, int k, cudaStream_t s) {
  Plan& p = plan(1, m, n, k);
  const int32_t alpha = 1, beta = 0;
  ATOM_CUBLAS_CHECK(cublasLtMatmul(lt_, p.desc, &alpha, w, p.a, x, p.b, &beta, acc, p.c, acc, p.c, &p.algo,
                                   workspace_.data(), workspace_.bytes(), s));
}

void BlasBaselines::gemm_int8(const int8_t* x, const int8_t* w, const float* sx, const float* sw, int32_t* acc,
                              uint16_t* y, int m, int n, int k, cudaStream_t s) {
  gemm_s8s32(x, w, acc, m, n, k, s);
  const int64_t total = int64_t(m) * n;
  const unsigned blocks = unsigned(std::min<int64_t>((total + 255) / 256, 132 * 16));
  int8_epilogue_kernel<<<blocks, 256, 0, s>>>(acc, sx, sw, reinterpret_cast<__half*>(y), m, n);
  ATOM_CUDA_CHECK_LAUNCH();
}

void BlasBaselines::gemm_fp8(const uint8_t* x, const uint8_t* w, uint16_t* y, int m, int n, int k, cudaStream_t s) {
  Plan& p = plan(2, m, n, k);
  const float alpha = 1.0f, beta = 0.0f;
  ATOM_CUBLAS_CHECK(cublasLtMatmul(lt_, p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.c, y, p.c, &p.algo,
                                   workspace_.data(), workspace_.bytes(), s));
}

}  // namespace atom::cuda
