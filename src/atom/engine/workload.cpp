#include "atom/engine/workload.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "atom/core/error.h"

namespace atom::engine {

void WorkloadSpec::validate() const {
  ATOM_CHECK(num_prompts >= 1, "--num-prompts must be >= 1, got {}", num_prompts);
  ATOM_CHECK(!std::isnan(request_rate), "--request-rate must be a number or inf");
  if (kind == Kind::Fixed) {
    ATOM_CHECK(input_len >= 1 && output_len >= 1, "--input-len and --output-len must be >= 1 (got {} / {})",
               input_len, output_len);
    ATOM_CHECK(max_total <= 0 || input_len + output_len <= max_total,
               "--input-len {} + --output-len {} exceeds the model length {}", input_len, output_len, max_total);
  } else {
    ATOM_CHECK(prompt_median >= 1 && output_median >= 1, "log-normal medians must be >= 1");
    ATOM_CHECK(prompt_sigma >= 0 && output_sigma >= 0, "log-normal sigmas must be >= 0");
    ATOM_CHECK(max_prompt >= 4 && max_output >= 4, "length clamps must be >= 4");
    ATOM_CHECK(max_total <= 0 || max_total >= 8, "the model length {} is too short for this workload", max_total);
  }
}

std::vector<BenchRequest> make_workload(const WorkloadSpec& spec, const std::vector<int32_t>& corpus) {
  spec.validate();
  ATOM_CHECK(!corpus.empty(), "the prompt corpus is empty");
  std::mt19937_64 rng(spec.seed);
  std::lognormal_distribution<double> prompt_len(std::log(spec.prompt_median), spec.prompt_sigma);
  std::lognormal_distribution<double> output_len(std::log(spec.output_median), spec.output_sigma);
  const bool poisson = spec.request_rate > 0 && std::isfinite(spec.request_rate);
  std::exponential_distribution<double> gap(poisson ? spec.request_rate : 1.0);
  std::vector<BenchRequest> out;
  double t = 0;
  for (int64_t i = 0; i < spec.num_prompts; ++i) {
    BenchRequest r;
    int64_t n_in = spec.input_len;
    r.output_len = spec.output_len;
    if (spec.kind == WorkloadSpec::Kind::ShareGptLike) {
      n_in = std::clamp<int64_t>(std::llround(prompt_len(rng)), 4, spec.max_prompt);
      r.output_len = std::clamp<int64_t>(std::llround(output_len(rng)), 4, spec.max_output);
      if (spec.max_total > 0 && n_in + r.output_len > spec.max_total) {
        // Keep the pair inside the engine's limit, shortening the longer side first.
        n_in = std::min(n_in, std::max<int64_t>(spec.max_total / 2, spec.max_total - r.output_len));
        r.output_len = spec.max_total - n_in;
      }
    }
    const size_t start = size_t(rng() % corpus.size());
    for (int64_t k = 0; k < n_in; ++k) r.prompt.push_back(corpus[(start + size_t(k)) % corpus.size()]);
    if (poisson && i > 0) t += gap(rng);
    r.arrival_s = t;
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<int32_t> tokenize_corpus(const Tokenizer& tok, const std::string& path, size_t max_bytes) {
  std::ifstream f(path, std::ios::binary);
  ATOM_CHECK(f.good(), "cannot read the prompt corpus '{}' (give one with --dataset)", path);
  std::string text(max_bytes, '\0');
  f.read(text.data(), std::streamsize(max_bytes));
  text.resize(size_t(f.gcount()));
  std::vector<int32_t> ids = tok.encode(text, false, /*parse_special=*/false);
  ATOM_CHECK(!ids.empty(), "the prompt corpus '{}' has no text", path);
  return ids;
}

}  // namespace atom::engine
