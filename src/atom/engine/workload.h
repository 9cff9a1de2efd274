// Synthetic serving workloads for `atom bench serve`, seeded and reproducible.
//
// ShareGPT-like: prompt and output lengths are drawn from log-normal distributions fitted by eye
// to ShareGPT conversations (long right tail, most turns short):
//   prompt ~ LogNormal(ln(prompt_median), prompt_sigma), clamped to [4, max_prompt]
//   output ~ LogNormal(ln(output_median), output_sigma), clamped to [4, max_output]
// Defaults: prompt median 128 tokens, sigma 0.9; output median 96 tokens, sigma 0.8; clamps
// 1024 / 512 — a smaller scale than ShareGPT itself (medians of a few hundred) so CPU runs finish.
// Fixed: every request has exactly input_len prompt tokens and output_len output tokens.
//
// Prompt tokens are real text: windows of a tokenized corpus (WikiText-2) at seeded offsets.
// Arrivals: all at t = 0 (rate = inf) or a Poisson process of the given rate (requests/s).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atom/tokenizer/tokenizer.h"

namespace atom::engine {

struct WorkloadSpec {
  enum class Kind { ShareGptLike, Fixed };
  Kind kind = Kind::ShareGptLike;
  int64_t num_prompts = 8;
  uint64_t seed = 0;
  double request_rate = 0;  // requests/s; <= 0 or inf = all at once
  // Fixed
  int64_t input_len = 128, output_len = 128;
  // ShareGPT-like
  double prompt_median = 128, prompt_sigma = 0.9, output_median = 96, output_sigma = 0.8;
  int64_t max_prompt = 1024, max_output = 512;
  int64_t max_total = 0;  // prompt + output at most (the engine's limit); 0 = no limit
  void validate() const;
};

struct BenchRequest {
  std::vector<int32_t> prompt;
  int64_t output_len = 0;
  double arrival_s = 0;  // offset from the start of the run
};

// `corpus_tokens`: the tokenized corpus prompts are cut from (it must not be empty; short
// corpora are wrapped around).
std::vector<BenchRequest> make_workload(const WorkloadSpec& spec, const std::vector<int32_t>& corpus_tokens);

// Tokenizes (up to max_bytes of) a text file for make_workload; throws atom::Error when it cannot.
std::vector<int32_t> tokenize_corpus(const Tokenizer& tok, const std::string& path, size_t max_bytes = 256 << 10);

}  // namespace atom::engine
