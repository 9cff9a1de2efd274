#include "atom/model/llama.h"

#include <cstring>

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"
#include "atom/model/rope.h"

namespace atom {

const char* linear_slot_name(LinearSlot s) {
  static const char* names[kNumLinearSlots] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                               "gate_proj", "up_proj", "down_proj"};
  return names[int(s)];
}

KVCache::KVCache(const ModelConfig& cfg, int64_t capacity)
    : capacity_(capacity), row_(int64_t(cfg.num_kv_heads) * cfg.head_dim) {
  ATOM_CHECK(capacity > 0, "KV cache capacity must be positive");
  k_.resize(size_t(cfg.num_layers));
  v_.resize(size_t(cfg.num_layers));
  for (int l = 0; l < cfg.num_layers; ++l) {
    k_[size_t(l)].resize(size_t(capacity * row_));
    v_[size_t(l)].resize(size_t(capacity * row_));
  }
}

void LlamaModel::embed_tokens(const int32_t* tokens, int64_t n, float* x) const {
  const int64_t H = cfg.hidden_size;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = tokens[i];
    ATOM_CHECK(t >= 0 && t < cfg.vocab_size, "token id {} out of range [0, {})", t, cfg.vocab_size);
    std::memcpy(x + i * H, &embed[size_t(t) * size_t(H)], size_t(H) * sizeof(float));
  }
}

void LlamaModel::forward_layer(int l, float* x, int64_t n, KVCache& cache) const {
  const ModelConfig& c = cfg;
  const int64_t H = c.hidden_size, F = c.intermediate_size, hd = c.head_dim;
  const int64_t q_dim = int64_t(c.num_heads) * hd, kv_dim = int64_t(c.num_kv_heads) * hd;
  const int64_t pos0 = cache.length();
  const LlamaLayer& L = layers[size_t(l)];
  // Activations of this call (n rows each).
  std::vector<float> xn(size_t(n * H)), q(size_t(n * q_dim)), att(size_t(n * q_dim)), tmp(size_t(n * H)),
      gate(size_t(n * F)), up(size_t(n * F));
  auto run_linear = [&](LinearSlot s, const float* in, float* out) {
    const Linear& lin = L.at(s);
    if (observer) observer(l, s, in, n, lin.in_features());
    lin.forward(in, n, out);
  };
  float* kc = cache.k(l) + pos0 * kv_dim;  // this call's K/V rows go straight into the cache
  float* vc = cache.v(l) + pos0 * kv_dim;

  // --- attention block ---
  cpu::rmsnorm(x, L.attn_norm.data(), xn.data(), n, H, c.rms_norm_eps);
  run_linear(LinearSlot::Q, xn.data(), q.data());
  run_linear(LinearSlot::K, xn.data(), kc);
  run_linear(LinearSlot::V, xn.data(), vc);
  if (kv_store_hook && kv_hook_pre_rope) kv_store_hook(l, kc, vc, n);
  for (int64_t i = 0; i < n; ++i) {
    rope_apply(&q[size_t(i * q_dim)], c.num_heads, int(hd), rope_inv_freq.data(), int(pos0 + i));
    rope_apply(kc + i * kv_dim, c.num_kv_heads, int(hd), rope_inv_freq.data(), int(pos0 + i));
  }
  if (kv_store_hook && !kv_hook_pre_rope) kv_store_hook(l, kc, vc, n);
  cpu::attention_causal(q.data(), cache.k(l), cache.v(l), att.data(), n, pos0, c.num_heads, c.num_kv_heads,
                        int(hd), kv_dim);
  run_linear(LinearSlot::O, att.data(), tmp.data());
  if (reduce_partial) reduce_partial(tmp.data(), n * H);
  cpu::add_inplace(x, tmp.data(), n * H);

  // --- MLP block (SwiGLU) ---
  cpu::rmsnorm(x, L.ffn_norm.data(), xn.data(), n, H, c.rms_norm_eps);
  run_linear(LinearSlot::Gate, xn.data(), gate.data());
  run_linear(LinearSlot::Up, xn.data(), up.data());
  cpu::silu_mul(gate.data(), up.data(), gate.data(), n * F);
  run_linear(LinearSlot::Down, gate.data(), tmp.data());
  if (reduce_partial) reduce_partial(tmp.data(), n * H);
  cpu::add_inplace(x, tmp.data(), n * H);
}

void LlamaModel::forward(const int32_t* tokens, int64_t n, KVCache& cache, float* hidden_out) const {
  ATOM_CHECK(n > 0, "forward: no tokens");
  ATOM_CHECK(cache.length() + n <= cache.capacity(),
             "forward: {} tokens at position {} exceed the KV cache capacity {}", n, cache.length(),
             cache.capacity());
  std::vector<float> x(size_t(n * cfg.hidden_size));
  embed_tokens(tokens, n, x.data());
  for (int l = 0; l < cfg.num_layers; ++l) forward_layer(l, x.data(), n, cache);
  cache.advance(n);
  cpu::rmsnorm(x.data(), final_norm.data(), hidden_out, n, cfg.hidden_size, cfg.rms_norm_eps);
}

void LlamaModel::logits(const float* hidden, int64_t n, float* out) const {
  if (lm_head) {
    lm_head->forward(hidden, n, out);
  } else {
    cpu::gemm_nt(n, cfg.vocab_size, cfg.hidden_size, hidden, cfg.hidden_size, embed.data(), cfg.hidden_size, out,
                 cfg.vocab_size);
  }
}

int64_t LlamaModel::num_parameters() const {
  int64_t p = int64_t(embed.size() + final_norm.size());
  if (lm_head) p += lm_head->in_features() * lm_head->out_features();
  for (const LlamaLayer& L : layers) {
    p += int64_t(L.attn_norm.size() + L.ffn_norm.size());
    for (const auto& lin : L.linear) p += lin->in_features() * lin->out_features();
  }
  return p;
}

}  // namespace atom
