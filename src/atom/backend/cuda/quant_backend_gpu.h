// The CUDA quantization backend (quant::QuantBackend, quant_backend.h; issue 6 item 5): `atom quantize
// --device cuda`. The calibration windows' residual streams stay on the GPU for the whole run.
//   pass 1   each decoder block in fp32 (cuBLAS SGEMM, no TF32 unless tf32_forward; attention as two strided-batched SGEMMs
//            around a causal softmax; RMSNorm / RoPE / SiLU kernels with the CPU's operation order)
//   stats    Σx² per channel in double, max|x|, and XᵀX as one fp32 SYRK per window (T rows) added
//            into a double accumulator: the CPU's precision scheme (InputStats::add runs one fp32 SYRK
//            per window too), so the two differ only by summation order inside the SYRK
//   pass 2   the block through its quantized linears with the CPU layers' arithmetic, not the serving
//            kernels: activations are rounded per token exactly as AtomLinear / W8A8Linear do (same
//            scales and integers, quant_rules.cuh) and multiplied in fp32 by the dequantized weights,
//            which equals the integer GEMM's Σ s_a·s_w·P up to fp32 summation order; KV rounded through
//            the model's KV format (kv_quant.cuh, bit-exact with kv_fake_quant_rows)
//   GPTQ     gptq_quantize_atom_gpu (gptq_gpu.h)
// Supported layers: DenseLinear, AtomLinear (any AtomConfig), W8A8Linear and SegmentedLinear of them;
// anything else, tensor-parallel hooks or a KV hook other than quant::apply_kv_format's, throws.
#pragma once
#include <memory>

#include "atom/quant/quant_backend.h"

namespace atom::cuda {

// Throws atom::Error when no CUDA device is visible. `device` is a CUDA device index. tf32_forward: the
// pass-1 / pass-2 GEMMs (linears and attention) on TF32 tensor cores (10-bit mantissa inputs, fp32
// accumulation) instead of fp32 SGEMM: several times faster, at GPTQ's usual calibration precision (the
// reference implementations calibrate in fp16), but the statistics then match the CPU's to ~1e-3, not 1e-4.
// XᵀX stays an fp32 SYRK into double either way.
std::unique_ptr<quant::QuantBackend> make_gpu_quant_backend(int device = 0, bool tf32_forward = false);

}  // namespace atom::cuda
