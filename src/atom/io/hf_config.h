// HF config.json (Llama family) and GGUF llama metadata -> ModelConfig.
#pragma once
#include <string>

#include "atom/model/config.h"

namespace atom::io {
class GgufFile;

// Parses config.json text. Accepts model_type llama / mistral (architectures LlamaForCausalLM,
// MistralForCausalLM); rope_scaling type "llama3" and "linear"; head_dim; tie_word_embeddings.
// Unknown architecture or missing/ill-typed fields -> atom::Error naming the field.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& source = "config.json");
ModelConfig load_hf_config(const std::string& path);

// general.architecture must be "llama" (or "mistral"); reads {arch}.block_count,
// .embedding_length, .feed_forward_length, .attention.head_count(_kv), .attention.key_length,
// .attention.layer_norm_rms_epsilon, .rope.freq_base, .context_length, .vocab_size (or the
// tokenizer's token count), rope scaling keys; tie_word_embeddings = no "output.weight" tensor.
ModelConfig config_from_gguf(const GgufFile& gguf);

}  // namespace atom::io
