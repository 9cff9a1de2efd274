// The quantization pipeline: calibrate, reorder, quantize every linear (RTN / clip search /
// GPTQ for Atom; SmoothQuant for W8A8), block by block, each block calibrated on the outputs of
// the already-quantized blocks before it (GPTQ's sequential scheme), then the KV-cache format.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "atom/model/llama.h"
#include "atom/quant/atom_linear.h"

namespace atom::quant {

struct QuantConfig {
  std::string method = "atom";  // "atom" (W4A4 + outliers), "w8a8" (SmoothQuant), "fp16" (none)
  AtomConfig atom;              // outliers, group, clips, outlier bits (method atom)
  bool w_clip_search = false;   // per-layer weight clip from a grid instead of atom.w_clip (RTN only)
  bool gptq = true;
  int kv_bits = 4;              // 4, 8 or 16 (16 = fp KV)
  bool kv_pre_rope = false;     // quantize K before RoPE (RoPE applied to the rounded K)
  float smooth_alpha = 0.5f;    // w8a8
  // Row-parallel linears (o_proj, down_proj) are quantized as this many independent K-segments
  // (own reorder, outliers n_outlier/S and groups each), so the checkpoint splits over S (or a
  // divisor of S) tensor-parallel ranks. 1 = plain layout. See docs/tensor-parallel.md.
  int tp_segments = 1;
  int samples = 128, seqlen = 2048;
  uint64_t seed = 0;
  std::string calib_file;

  void validate() const;
  nlohmann::json to_json() const;
  static QuantConfig from_json(const nlohmann::json& j);  // throws atom::Error naming a bad field
};

struct LinearReport {
  int layer = 0;
  std::string linear;        // "q_proj", ...
  double rel_error = 0;      // ||y_q - y|| / ||y|| on calibration inputs (activation quant included)
  float w_clip = 0;          // the clip used (search result or fixed)
};

struct QuantizeReport {
  std::vector<LinearReport> linears;
  double seconds = 0;
  int64_t calib_tokens = 0;
  std::string backend;                          // "cpu", "cuda"
  // Wall seconds per stage: "embed", "pass1" (forward + statistics), "pass2" (forward through the
  // quantized block), "gptq" (the solves), "host" (reorder, RTN, layer packing, error reports, ...),
  // and the backend's own parts (QuantBackend::extra_timings, e.g. "hessian", included in pass1).
  std::map<std::string, double> stage_seconds;
  nlohmann::json to_json() const;
};

class QuantBackend;  // quant_backend.h

// Quantizes `model` in place. `windows` are calibration token windows (sample_windows()).
// on_layer(l, total) is called after each block (progress). `backend` runs the calibration forward
// passes, statistics and GPTQ solves (null: the CPU reference, make_cpu_quant_backend()).
QuantizeReport quantize_model(LlamaModel& model, const std::vector<std::vector<int32_t>>& windows,
                              const QuantConfig& cfg, const std::function<void(int, int)>& on_layer = nullptr,
                              QuantBackend* backend = nullptr);

// Installs the KV-cache format of `cfg` (kv_bits, kv_pre_rope) on the model (no-op for 16).
void apply_kv_format(LlamaModel& model, const QuantConfig& cfg);

}  // namespace atom::quant
