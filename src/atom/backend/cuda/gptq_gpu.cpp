// GPTQ on the GPU, host half (gptq_gpu.h): the checks, dead-column rule, damping schedule, block cuts and
// output assembly are gptq.h's gptq_detail steps, shared with the CPU reference; the device does
// chol(H⁻¹), the column walk and the lazy update.
#include "atom/backend/cuda/gptq_gpu.h"

#include <cublas_v2.h>
#include <cusolverDn.h>

#include <algorithm>
#include <utility>

#include "atom/backend/cuda/blas_handle.h"
#include "atom/backend/cuda/cuda_check.h"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/gptq_gpu_kernels.h"
#include "atom/core/error.h"

#define ATOM_CUSOLVER_CHECK(expr)                                                                  \
  do {                                                                                             \
    const cusolverStatus_t atom_cusolver_st_ = (expr);                                             \
    if (atom_cusolver_st_ != CUSOLVER_STATUS_SUCCESS)                                              \
      throw ::atom::Error(fmt::format("{}:{}: {}: cuSOLVER status {}", __FILE__, __LINE__, #expr, \
                                      int(atom_cusolver_st_)));                                    \
  } while (0)

namespace atom::cuda {
namespace {

struct SolverHandle {
  cusolverDnHandle_t h = nullptr;
  explicit SolverHandle(cudaStream_t s) {
    ATOM_CUSOLVER_CHECK(cusolverDnCreate(&h));
    ATOM_CUSOLVER_CHECK(cusolverDnSetStream(h, s));
  }
  ~SolverHandle() { if (h) cusolverDnDestroy(h); }
  SolverHandle(const SolverHandle&) = delete;
  SolverHandle& operator=(const SolverHandle&) = delete;
};

// a (k x k, column-major, symmetric) <- U upper with a⁻¹ = UᵀU, as gptq.cpp's cholesky_inverse_upper
// (potrf, potri, symmetrize, potrf; the strict lower triangle is left as garbage: only U's upper
// triangle is read). false if a is not positive definite.
bool cholesky_inverse_upper(SolverHandle& sv, double* a, int k, cudaStream_t s) {
  int lw_f = 0, lw_i = 0;
  ATOM_CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(sv.h, CUBLAS_FILL_MODE_UPPER, k, a, k, &lw_f));
  ATOM_CUSOLVER_CHECK(cusolverDnDpotri_bufferSize(sv.h, CUBLAS_FILL_MODE_UPPER, k, a, k, &lw_i));
  DeviceBuffer<double> work{size_t(std::max(std::max(lw_f, lw_i), 1))};
  DeviceBuffer<int> info(1);
  auto ok = [&]() { return info.download(s)[0] == 0; };
  ATOM_CUSOLVER_CHECK(cusolverDnDpotrf(sv.h, CUBLAS_FILL_MODE_UPPER, k, a, k, work.data(), lw_f, info.data()));
  if (!ok()) return false;
  ATOM_CUSOLVER_CHECK(cusolverDnDpotri(sv.h, CUBLAS_FILL_MODE_UPPER, k, a, k, work.data(), lw_i, info.data()));
  if (!ok()) return false;
  gptq_detail::symmetrize_from_upper(a, k, s);
  ATOM_CUSOLVER_CHECK(cusolverDnDpotrf(sv.h, CUBLAS_FILL_MODE_UPPER, k, a, k, work.data(), lw_f, info.data()));
  return ok();
}

// Row-major [n, cols] host copy of a column-major [cols][n] device array.
template <typename T>
std::vector<T> rows_of(const DeviceBuffer<T>& d, int64_t n, int64_t cols, cudaStream_t s) {
  const std::vector<T> c = d.download(s);
  std::vector<T> r(size_t(n * cols));
  for (int64_t j = 0; j < cols; ++j)
    for (int64_t i = 0; i < n; ++i) r[size_t(i * cols + j)] = c[size_t(j * n + i)];
  return r;
}

}  // namespace

quant::GptqResult gptq_quantize_atom_gpu(const float* w_r, int64_t n, int64_t k, const double* h_r,
                                         std::vector<int32_t> perm, const quant::AtomConfig& cfg,
                                         const quant::GptqOptions& opt, cudaStream_t s) {
  const quant::AtomLayout L(k, cfg);
  ATOM_CHECK(k < (int64_t(1) << 31) && n < (int64_t(1) << 31), "GPTQ (GPU): {} x {} is too large", n, k);
  const quant::gptq_detail::PreparedHessian ph = quant::gptq_detail::prepare(w_r, n, k, h_r, opt);
  quant::GptqResult res;
  res.dead_columns = ph.dead_columns;

  // W, column-major double (dead columns zeroed)
  DeviceBuffer<double> W{size_t(n * k)};
  {
    DeviceBuffer<float> w32;
    w32.upload(w_r, size_t(n * k), s);
    DeviceBuffer<uint8_t> dd;
    dd.upload(ph.dead, s);
    gptq_detail::transpose_to_double(w32.data(), n, k, dd.data(), W.data(), s);
    ATOM_CUDA_CHECK(cudaStreamSynchronize(s));  // before the staging buffers are freed
  }

  // U = chol((H + damp)⁻¹) upper, column-major in A (gptq.cpp's damping schedule)
  SolverHandle solver(s);
  DeviceBuffer<double> A{size_t(k * k)};
  res.damp_used = quant::gptq_detail::damped_factor(opt, ph.mean_diag, [&](double damp) {
    A.upload(ph.h, s);
    gptq_detail::add_diagonal(A.data(), k, damp, s);
    return cholesky_inverse_upper(solver, A.data(), int(k), s);
  });
  BlasHandle blas(s);
  const double one = 1.0, zero = 0.0, minus_one = -1.0;
  DeviceBuffer<double> Ur{size_t(k * k)};  // row-major U: Ur (column-major) = Aᵀ
  ATOM_CUBLAS_CHECK(cublasDgeam(blas.h, CUBLAS_OP_T, CUBLAS_OP_N, int(k), int(k), &one, A.data(), int(k), &zero,
                                A.data(), int(k), Ur.data(), int(k)));

  const auto blocks = quant::gptq_detail::column_blocks(L, opt.block);
  int64_t widest = 1;
  for (const auto& [i1, i2] : blocks) widest = std::max(widest, i2 - i1);

  const int64_t O = L.n_outlier;
  DeviceBuffer<int8_t> qn{size_t(n * L.k_normal)}, qo{size_t(L.int8_outliers ? n * O : 0)};
  DeviceBuffer<float> scales{size_t(n * L.n_groups)}, so{size_t(L.int8_outliers ? n : 0)},
      fo{size_t(L.fp16_outliers ? n * O : 0)};
  DeviceBuffer<double> loss{size_t(n)}, err{size_t(n * widest)};
  loss.fill_bytes(0, s);  // all-zero bytes are 0.0

  gptq_detail::BlockArgs a{};
  a.w = W.data(); a.err = err.data(); a.ur = Ur.data();
  a.n = n; a.k = k; a.kn = L.k_normal; a.group = L.group;
  a.int8_outliers = L.int8_outliers;
  a.w_clip = cfg.w_clip; a.w_outlier_clip = cfg.w_outlier_clip;
  a.qn = qn.data(); a.scale = scales.data(); a.qo = qo.data(); a.so = so.data(); a.fo = fo.data();
  a.loss = loss.data();
  for (const auto& [i1, i2] : blocks) {
    a.i1 = i1;
    a.i2 = i2;
    gptq_detail::quantize_block(a, s);
    // Lazy batch update of every later column: W[:, i2:] -= Err · U[i1:i2, i2:] (U column-major in A).
    if (i2 < k)
      ATOM_CUBLAS_CHECK(cublasDgemm(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, int(n), int(k - i2), int(i2 - i1), &minus_one,
                                    err.data(), int(n), A.data() + i1 + i2 * k, int(k), &one, W.data() + i2 * n, int(n)));
  }
  for (double l : loss.download(s)) res.loss += l;

  res.weights = quant::gptq_detail::assemble(
      n, k, cfg, std::move(perm), rows_of(qn, n, L.k_normal, s), rows_of(scales, n, L.n_groups, s),
      L.int8_outliers ? rows_of(qo, n, O, s) : std::vector<int8_t>{}, L.int8_outliers ? so.download(s) : std::vector<float>{},
      L.fp16_outliers ? rows_of(fo, n, O, s) : std::vector<float>{});
  return res;
}

}  // namespace atom::cuda
