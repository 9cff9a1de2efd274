// Single-sequence generation on the CPU reference model: prefill the prompt, then decode one
// token at a time with the sampler until max_tokens, a stop id or a stop string.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "atom/model/llama.h"
#include "atom/model/sampler.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom {

struct GenerateOptions {
  int max_tokens = 128;
  SamplingParams sampling;
  std::vector<std::string> stop_strings;
  bool stop_at_eos = true;  // stop on the tokenizer's stop ids
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (stop token excluded)
  std::string text;             // decoded, cut before any stop string
  std::string finish_reason;    // "stop" | "length"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// on_text receives each new piece of decoded text as it becomes printable; return false to stop.
GenerateResult generate(const LlamaModel& model, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& opt,
                        const std::function<bool(const std::string&)>& on_text = nullptr);

}  // namespace atom
