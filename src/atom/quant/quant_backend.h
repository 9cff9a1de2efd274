// Where quantize_model's heavy steps run (issue 6 item 5). The pipeline (pipeline.cpp) owns the
// algorithm: block order, reorder, which linear gets which Hessian, the quantized layers themselves.
// A QuantBackend owns the calibration data and does the three expensive steps on it:
//   (a) gptq()         the GPTQ solve of one linear (gptq.h's contract, host in / host out)
//   (b) block_stats()  pass 1: runs decoder block l (still dense, fp KV) over every calibration window
//                      and accumulates the statistics of its four inputs (Σx², max|x|, XᵀX)
//   (c) advance()      pass 2: moves every window's residual stream through block l as the model now
//                      holds it (quantized linears, the model's KV format)
// The statistics live with the activations (on the device for a GPU backend), so (b) comes with the
// pass-1 forward. make_cpu_quant_backend() is the reference; the CUDA one (backend/cuda/quant_backend_gpu.h)
// is plugged in by the CLI (`atom quantize --device`), so this library does not depend on CUDA.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "atom/model/llama.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/gptq.h"

namespace atom::quant {

constexpr int64_t kErrorRows = 512;  // calibration rows kept per input to measure output error

// Statistics of the four inputs of one block (indexed by InputKind).
struct BlockStats {
  InputStats in[kNumInputKinds];
  std::vector<float> rows[kNumInputKinds];  // the first kErrorRows input rows (window order), for error reports
};

// Empty statistics for the inputs of block L (channel counts from its linears).
BlockStats make_block_stats(const LlamaLayer& L, bool hessian);

class QuantBackend {
 public:
  virtual ~QuantBackend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda"
  // Once, before block 0: every window's residual stream = embed(window). Windows have equal length.
  virtual void begin(const LlamaModel& model, const std::vector<std::vector<int32_t>>& windows) = 0;
  // Pass 1 over block l (its linears dense, fp KV). The residual streams are not changed. hessian: also
  // XᵀX. The model is not changed either (the CPU backend borrows its observer hook for the call).
  virtual BlockStats block_stats(LlamaModel& model, int l, bool hessian) = 0;
  // Pass 2: residual streams <- block l (as the model holds it now, with model.kv_store_hook / kv_bits).
  virtual void advance(const LlamaModel& model, int l) = 0;
  virtual GptqResult gptq(const float* w_r, int64_t n, int64_t k, const double* h_r, std::vector<int32_t> perm,
                          const AtomConfig& cfg) = 0;
  // Window s's residual stream [T, hidden] (tests; after begin()).
  virtual std::vector<float> residual(int64_t s) const = 0;
  // Seconds spent in parts of the steps the pipeline cannot time itself (e.g. "hessian" inside
  // block_stats); added to QuantizeReport::stage_seconds.
  virtual std::map<std::string, double> extra_timings() const { return {}; }
  // advance() leaves the host's cores idle (a device backend), so the pipeline may run host work
  // (the error reports, which only read the model) on another thread meanwhile.
  virtual bool host_free_during_advance() const { return false; }
};

// The CPU reference: LlamaModel::forward_layer with an observer feeding InputStats::add, and
// gptq_quantize_atom.
std::unique_ptr<QuantBackend> make_cpu_quant_backend();

}  // namespace atom::quant
