// Loading a Llama-family model from an HF directory (config.json + safetensors, possibly
// sharded) or a GGUF file, into the fp32 CPU reference model. Quantized Atom checkpoints are
// loaded by src/atom/quant/checkpoint.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "atom/model/llama.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom {

enum class ModelFormat { HfDirectory, Gguf, AtomCheckpoint };
// Detects the format of `path` (a .gguf / GGUF-magic file, a directory with config.json, or an
// Atom checkpoint); throws atom::Error saying what was expected.
ModelFormat detect_model_format(const std::string& path);

std::unique_ptr<LlamaModel> load_llama_hf(const std::string& dir);
std::unique_ptr<LlamaModel> load_llama_gguf(const std::string& path);
// Any supported format that holds an fp32/fp16 model (not a quantized checkpoint).
std::unique_ptr<LlamaModel> load_llama(const std::string& path);

// A model of the given shape with seeded random weights (never all zero) — tests and speed work.
std::unique_ptr<LlamaModel> make_random_llama(const ModelConfig& cfg, uint64_t seed);

// Reverses llama.cpp's q/k row permutation (GGUF stores q/k rows interleaved for its RoPE).
// w: [n_head*head_dim, in] row-major, in place.
void unpermute_qk_rows(std::vector<float>& w, int n_head, int64_t in_features);

}  // namespace atom
