// The Llama-family decoder, written once and read top to bottom (see forward() in llama.cpp):
//   x = embed[tokens]
//   per layer: h = x + o_proj(attn(rope(q(norm1(x))), rope(k(norm1(x))), v(norm1(x))))
//              x = h + down(silu(gate(norm2(h))) * up(norm2(h)))
//   hidden = final_norm(x); logits = hidden · lm_headᵀ (tied: embedᵀ)
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "atom/model/config.h"
#include "atom/model/linear.h"

namespace atom {

// The seven linears of a decoder block, in the order Atom quantizes them.
enum class LinearSlot : int { Q = 0, K, V, O, Gate, Up, Down };
constexpr int kNumLinearSlots = 7;
const char* linear_slot_name(LinearSlot s);  // "q_proj", ..., "down_proj" (HF names)

struct LlamaLayer {
  std::vector<float> attn_norm;  // input_layernorm
  std::vector<float> ffn_norm;   // post_attention_layernorm
  std::unique_ptr<Linear> linear[kNumLinearSlots];
  Linear& at(LinearSlot s) const { return *linear[int(s)]; }
};

// The KV cache of one sequence, fp32 rows [capacity, n_kv_heads*head_dim] per layer.
// Quantized KV modes store values already rounded through their format (see quant/kv_quant.h):
// bit-for-bit what a kernel that dequantizes on the fly would read.
class KVCache {
 public:
  KVCache(const ModelConfig& cfg, int64_t capacity);
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  void clear() { length_ = 0; }
  void truncate(int64_t n) { if (n < length_) length_ = n; }
  float* k(int layer) { return k_[size_t(layer)].data(); }
  float* v(int layer) { return v_[size_t(layer)].data(); }
  int64_t row_size() const { return row_; }
  void advance(int64_t n) { length_ += n; }

 private:
  int64_t capacity_, row_, length_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

// Called with each linear's input during forward (calibration collects statistics here).
using LinearInputObserver =
    std::function<void(int layer, LinearSlot slot, const float* x, int64_t m, int64_t k)>;

// Optional transform of new K/V rows as they are stored (KV-cache quantization). It runs on
// K after RoPE, or before RoPE when `kv_hook_pre_rope` is set (RoPE then rotates the rounded K).
using KVStoreHook = std::function<void(int layer, float* k_rows, float* v_rows, int64_t m)>;

// Tensor parallelism: receives a row-parallel linear's partial output (o_proj, down_proj) before the
// residual add; a TP rank all-reduces it across ranks there (src/atom/dist/tensor_parallel.h).
using PartialSumReducer = std::function<void(float* y, int64_t count)>;

struct LlamaModel {
  ModelConfig cfg;
  std::vector<float> embed;       // [vocab, hidden]
  std::vector<float> final_norm;  // [hidden]
  std::unique_ptr<Linear> lm_head;  // null when tied to `embed`
  std::vector<LlamaLayer> layers;
  std::vector<float> rope_inv_freq;
  std::string source;             // where it was loaded from
  std::string weights_note;       // e.g. "dequantized from GGUF Q4_1"

  LinearInputObserver observer;   // empty = none
  KVStoreHook kv_store_hook;      // empty = fp32 KV
  bool kv_hook_pre_rope = false;
  int kv_bits = 16;               // the KV format the hook implements (quant::apply_kv_format sets both)
  PartialSumReducer reduce_partial;  // empty = the whole model is on this device

  // Runs tokens[0..n) at positions cache.length().. , appends their K/V to the cache and
  // writes the final-normed hidden states [n, hidden] to `hidden_out`.
  void forward(const int32_t* tokens, int64_t n, KVCache& cache, float* hidden_out) const;
  // One decoder block on the residual stream x[n, hidden] (in place) at positions
  // cache.length().. ; the caller advances the cache after the last layer.
  void forward_layer(int layer, float* x, int64_t n, KVCache& cache) const;
  // x[n, hidden] = embed[tokens]
  void embed_tokens(const int32_t* tokens, int64_t n, float* x) const;
  // logits[n, vocab] = hidden[n, hidden] · lm_headᵀ
  void logits(const float* hidden, int64_t n, float* logits_out) const;

  int64_t num_parameters() const;
};

}  // namespace atom
