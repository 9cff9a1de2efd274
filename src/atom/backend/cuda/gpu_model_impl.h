// Internals of GpuLlamaModel shared by gpu_model.cpp (forward, runtime) and gpu_model_weights.cpp
// (building the weights). Not part of the public interface.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/blas_baselines.h"
#include "atom/backend/cuda/fused_quant.h"
#include "atom/backend/cuda/gpu_model.h"
#include "atom/backend/cuda/paged_kv.h"
#include "atom/backend/cuda/w8a8_gemm.h"
#include "atom/model/rope.h"

namespace atom::cuda {

// One GEMM of the layer (q/k/v and gate/up are stacked along N); the mode's weights only.
struct GpuLinear {
  int64_t n = 0, k = 0;
  DeviceBuffer<uint16_t> f16;  // fp16 [N, K]
  GpuW8A8Weights w8;
  GpuAtomWeights atom;
};

struct GpuLayer {
  DeviceBuffer<float> attn_norm, ffn_norm;
  GpuLinear qkv, o, gate_up, down;
};

// Where a GEMM writes: fp16 (y16), or fp32 (y32), added into y32 when `accumulate` (the residual).
struct GemmOut {
  uint16_t* y16 = nullptr;
  float* y32 = nullptr;
  bool accumulate = false;
};

struct DecodeGraphs;  // gpu_model_graphs.cpp

struct GpuLlamaModel::Impl {
  std::string name;
  ModelConfig cfg;
  GpuMode mode = GpuMode::Fp16;
  GpuModelOptions opt;
  Stream stream;
  BlasBaselines blas;

  // weights
  DeviceBuffer<uint16_t> embed;     // [vocab, H] fp16
  DeviceBuffer<uint16_t> lm_head_w; // [vocab, H] fp16; empty when tied to embed
  DeviceBuffer<float> final_norm;
  std::vector<GpuLayer> layers;
  int64_t weight_bytes = 0;
  const DeviceBuffer<uint16_t>& lm_head() const { return lm_head_w.size() ? lm_head_w : embed; }

  // runtime: KV pool, workspaces for max_tokens rows, the step's metadata
  std::unique_ptr<PagedKvCache> kv;
  std::unique_ptr<AttentionWorkspace> attn_ws;
  int page_size = 16;
  int64_t max_logit_rows = 0, max_blocks_cap = 0;
  DeviceBuffer<float> inv_freq, x_f32, tmp_f32, logits_f32, act_i8_scale, qkv32, gu32;
  DeviceBuffer<uint16_t> qkv16, q16, k16, v16, att16, gu16, act_f16;
  DeviceBuffer<int8_t> act_i8;
  DeviceBuffer<int32_t> acc_i32, meta, ids_dev;
  DeviceBuffer<GpuRowSampling> sampling_dev;  // [max_logit_rows] draws' parameters
  GpuAtomActs act_atom;
  std::vector<int32_t> host_meta;
  int64_t step_T = 0, step_B = 0, step_R = 0;
  int step_max_q = 0, step_max_blocks = 0;
  int64_t off_tokens = 0, off_pos = 0, off_slots = 0, off_cu_q = 0, off_seq_lens = 0, off_bt = 0, off_rows = 0;

  int64_t usable_pages = 0;  // pages a block table may name; page usable_pages is the padding rows' page
  std::unique_ptr<DecodeGraphs> graphs;
  int64_t graph_replays = 0;

  Impl();
  ~Impl();  // out of line: DecodeGraphs is complete only in gpu_model_graphs.cpp
  FusedOut input_of(GpuLinear& lin);
  void gemm(GpuLinear& lin, int64_t T, const GemmOut& out, const uint16_t* fp16_in = nullptr);
  // x += input · Wᵀ for a row-parallel linear (o_proj, down): summed over the TP ranks first when
  // opt.all_reduce is set.
  void residual_gemm(GpuLinear& lin, int64_t T, const uint16_t* fp16_in = nullptr);
  // Packs the batch's metadata and copies it to the device. Sequences from index n_real on are padding
  // (their pages may be the reserved one); blocks_stride > 0 fixes the block-table width (graphs).
  void upload_batch(const std::vector<SeqStep>& batch, bool all_logits, int64_t n_real, int blocks_stride = 0);
  // Every launch of one step over the uploaded batch (no host sync): logits_f32 rows [0, step_R), and
  // with `greedy` their argmax in ids_dev.
  void run_device(bool greedy);
  // One step: a decode graph when eligible (gpu_model_graphs.cpp), else eager; then `rows` logits rows
  // (or ids) to the host and the step's one host sync.
  // With `sampling` (one entry per logits row), ids_host gets draws (sample_rows) instead of argmaxes.
  void forward(const std::vector<SeqStep>& batch, bool all_logits, float* logits_host, int32_t* ids_host,
               const std::vector<GpuRowSampling>* sampling = nullptr);
  bool graph_step(const std::vector<SeqStep>& batch);  // false: not eligible
  void allocate_runtime();
  static std::unique_ptr<GpuLlamaModel> finish(std::unique_ptr<Impl> impl);
};

}  // namespace atom::cuda
