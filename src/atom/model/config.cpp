#include "atom/model/config.h"

#include <fmt/format.h>

#include "atom/core/error.h"

namespace atom {

void ModelConfig::validate() const {
  auto positive = [](const char* name, long v, long max) {
    ATOM_CHECK(v > 0 && v <= max, "model config: {} = {} is out of range (1..{})", name, v, max);
  };
  positive("vocab_size", vocab_size, 1 << 24);
  positive("hidden_size", hidden_size, 1 << 17);
  positive("intermediate_size", intermediate_size, 1 << 20);
  positive("num_hidden_layers", num_layers, 1024);
  positive("num_attention_heads", num_heads, 4096);
  positive("num_key_value_heads", num_kv_heads, 4096);
  positive("head_dim", head_dim, 1024);
  positive("max_position_embeddings", max_position_embeddings, 1 << 24);
  ATOM_CHECK(num_heads % num_kv_heads == 0,
             "model config: num_attention_heads ({}) is not a multiple of num_key_value_heads ({})",
             num_heads, num_kv_heads);
  ATOM_CHECK(head_dim % 2 == 0, "model config: head_dim {} must be even for RoPE", head_dim);
  ATOM_CHECK(rms_norm_eps > 0 && rms_norm_eps < 1, "model config: rms_norm_eps {} out of range",
             rms_norm_eps);
  ATOM_CHECK(rope_theta > 0, "model config: rope_theta {} must be positive", rope_theta);
  if (rope_scaling.type != RopeScaling::Type::None)
    ATOM_CHECK(rope_scaling.factor >= 1.0f, "model config: rope_scaling.factor {} must be >= 1",
               rope_scaling.factor);
}

std::string ModelConfig::summary() const {
  return fmt::format(
      "{}: {} layers, hidden {}, ffn {}, heads {}/{} (kv), head_dim {}, vocab {}, rope_theta {}{}{}",
      architecture, num_layers, hidden_size, intermediate_size, num_heads, num_kv_heads, head_dim,
      vocab_size, rope_theta, rope_scaling.type == RopeScaling::Type::Llama3 ? " (llama3 scaling)" : "",
      tie_word_embeddings ? ", tied embeddings" : "");
}

}  // namespace atom
