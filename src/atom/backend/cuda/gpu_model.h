// The Llama decoder on the GPU (issue 6 item 1): one forward definition (GpuLlamaModel::forward in
// gpu_model.cpp, read top to bottom) for three modes that differ only in how a linear's input is
// quantized and which GEMM runs it:
//   fp16  cuBLAS fp16 GEMMs (fp32 accumulate), fp16 KV
//   w8a8  SmoothQuant INT8 (fused quantizer + cuBLASLt INT8 + scale epilogue), INT8 KV
//   atom  W4A4 + 128 INT8 outliers (fused norm/reorder/SiLU quantizers + atom_gemm), INT4 KV
// The residual stream is fp32 (as the CPU reference). With f32_acts (default) the quantized modes keep
// what the CPU keeps in fp32 where it decides a rounding: the q/k/v and gate/up GEMM outputs (q/k/v through
// RoPE into the KV write), and the quantizers read the fused ops' fp32 values, so an INT4/INT8 step is
// not flipped by an fp16 rounding the CPU never makes (docs/results.md: the old fp16 path was +0.84% ppl
// on SmolLM2 atom). fp16 mode's linear inputs/outputs, the attention output and q are fp16; logits fp32. q/k/v and gate/up run as one stacked GEMM each (they share an input,
// and in atom/w8a8 mode the same reorder / smoothing vector). Attention and the paged KV cache are
// paged_kv.h's. Built from a loaded CPU LlamaModel (its linears name the mode: DenseLinear -> fp16,
// W8A8Linear -> w8a8, AtomLinear -> atom) or as a synthetic model of a named shape generated on the GPU.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "atom/backend/cuda/gpu_sampling.h"
#include "atom/model/config.h"
#include "atom/model/perplexity.h"

namespace atom {
struct LlamaModel;
}

namespace atom::cuda {

enum class GpuMode { Fp16, W8A8, Atom };
const char* gpu_mode_name(GpuMode m);         // "fp16", "w8a8", "atom"
GpuMode parse_gpu_mode(const std::string& s);  // throws atom::Error

// One sequence's share of a step — the engine's Executor::step interface, field for field.
// Tokens at positions start_pos .. start_pos+n_tokens-1; the block table (host array) names the KV
// pages holding positions 0 .. start_pos+n_tokens-1 (n_blocks * page_size of them at least).
struct SeqStep {
  int64_t seq_id = 0;
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  int64_t start_pos = 0;
  const int32_t* block_table = nullptr;
  int64_t n_blocks = 0;
  bool want_logits = true;
};

struct GpuModelOptions {
  int64_t max_tokens = 4096;            // rows of one step (sum of n_tokens)
  int max_seqs = 256;                   // sequences of one step
  int64_t max_logit_rows = 0;           // logits rows of one step (0: max_seqs)
  int64_t max_blocks_per_seq = 0;       // 0: from max_position_embeddings
  int page_size = 16;
  int kv_bits = 0;                      // 0: the CPU model's KV format (from_cpu) or the mode's (synthetic:
                                        // fp16 16, w8a8 8, atom 4); else 4, 8, 16
  float gpu_memory_utilization = 0.9f;  // KV pool = this share of total memory minus what is in use
  int64_t kv_pages = 0;                 // > 0: exactly this many usable pages instead
  bool f32_acts = true;                 // false: the older all-fp16 activation path (diagnosis; also
                                        // forced by the environment variable ATOM_GPU_F16_ACTS=1)
  bool cuda_graphs = false;             // decode-only steps replay a CUDA graph per (batch, blocks) bucket
  // Tensor parallelism (docs/tensor-parallel.md): this model is one rank's shard, and the row-parallel
  // o_proj / down outputs are partial sums that this sums over the ranks in place (n fp32 values on this
  // model's stream) before the residual add. Empty: one GPU.
  std::function<void(float* data, int64_t n, cudaStream_t stream)> all_reduce;
};

class GpuLlamaModel {
 public:
  // Uploads a CPU model (weights fp16 / int8 / GpuAtomWeights by its linears' kind).
  static std::unique_ptr<GpuLlamaModel> from_cpu(const LlamaModel& m, const GpuModelOptions& opt = {});
  // Seeded random weights generated on the GPU for a named shape (named_shape()), for speed work. With
  // tp > 1: one rank's shard of it (dist::shard_config: heads, KV heads and FFN channels / tp).
  static std::unique_ptr<GpuLlamaModel> synthetic(const std::string& shape, GpuMode mode, uint64_t seed,
                                                  const GpuModelOptions& opt = {}, int tp = 1);
  // "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b" (Llama-3.1 RoPE scaling); throws otherwise.
  static ModelConfig named_shape(const std::string& name);

  ~GpuLlamaModel();
  GpuLlamaModel(const GpuLlamaModel&) = delete;
  GpuLlamaModel& operator=(const GpuLlamaModel&) = delete;

  const ModelConfig& config() const;
  GpuMode mode() const;
  int kv_bits() const;
  int page_size() const;
  int64_t num_pages() const;        // KV pool pages a block table may name (one more is kept for padding)
  int64_t weight_bytes() const;     // device bytes of all weights
  int64_t max_blocks_per_seq() const;
  std::string summary() const;

  // One engine step: logits fp32 [count(want_logits), vocab] (host), for each want_logits sequence in
  // batch order the logits of its last token.
  void step(const std::vector<SeqStep>& batch, float* logits);
  // The same step with greedy sampling on the GPU: ids[i] = argmax of the i-th want_logits row (the first
  // index on ties), so only the ids cross to the host.
  void step_greedy(const std::vector<SeqStep>& batch, int32_t* ids);
  // The same step with a draw on the GPU per want_logits row: ids[i] from row i with rows[i]
  // (gpu_sampling.h; greedy rows take the argmax).
  void step_sample(const std::vector<SeqStep>& batch, const std::vector<GpuRowSampling>& rows, int32_t* ids);
  // Decode steps replayed from CUDA graphs so far, and graphs captured (tests, benchmarks).
  int64_t graph_replays() const;
  int64_t graphs_captured() const;
  // Logits of every token of one sequence's step, [n_tokens, vocab] (perplexity); n_tokens <= max_logit_rows.
  void step_all_logits(const SeqStep& seq, float* logits);

  struct Impl;

 private:
  explicit GpuLlamaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Perplexity with evaluate_perplexity's protocol (windows of ctx, NLL of tokens 1..ctx-1), each window
// run as chunked prefill of `chunk` tokens (<= max_logit_rows) through the paged cache (pages 0..).
PerplexityResult evaluate_perplexity_gpu(GpuLlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                         int64_t max_windows = 0, int64_t chunk = 256, bool progress = true);

}  // namespace atom::cuda
