// GPTQ on the GPU (issue 6 item 5): atom::quant::gptq_quantize_atom's algorithm and rounding rules
// (gptq.h), in double precision like the CPU reference, so the two agree up to the summation order of
// the lazy-update GEMM:
//   chol(H⁻¹) upper   cuSOLVER potrf / potri / potrf (damping raised ×10 on failure, as on the CPU)
//   in-block columns  one thread per output row walks the block's columns (scales at group / outlier
//                     starts from the updated weights, rounding, error feedback inside the block)
//   lazy update       cuBLAS DGEMM, W[:, i2:] -= Err · U[i1:i2, i2:]
// On the device W, Err and the outputs are column-major (one column = all rows, so a thread per row
// reads and writes coalesced); U is kept row-major as well for the per-column row reads.
// Host in, host out: a drop-in for the CPU call in the quantization pipeline.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "atom/quant/gptq.h"

namespace atom::cuda {

quant::GptqResult gptq_quantize_atom_gpu(const float* w_r, int64_t n, int64_t k, const double* h_r,
                                         std::vector<int32_t> perm, const quant::AtomConfig& cfg,
                                         const quant::GptqOptions& opt = {}, cudaStream_t s = nullptr);

}  // namespace atom::cuda
