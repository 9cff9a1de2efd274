// Llama-family model hyper-parameters, filled from HF config.json or GGUF metadata.
#pragma once
#include <string>

namespace atom {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  float factor = 1.0f;
  // llama3 only:
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture = "llama";  // "llama" (Llama-2/3, SmolLM2, TinyLlama) or "mistral"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_heads = 0;
  int num_kv_heads = 0;  // GQA: num_heads % num_kv_heads == 0
  int head_dim = 0;      // default hidden_size / num_heads
  int max_position_embeddings = 2048;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int sliding_window = 0;  // 0 = none (Mistral-style configs may set it)
  int bos_token_id = -1;
  int eos_token_id = -1;

  // Throws atom::Error naming the offending field when the numbers do not make a Llama.
  void validate() const;
  std::string summary() const;  // one line for logs
};

}  // namespace atom
