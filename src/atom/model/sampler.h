// Token sampling: greedy (temperature 0), temperature, top-k, top-p (nucleus), seeded.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace atom {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  uint64_t seed = 0;
  void validate() const;     // throws atom::Error for out-of-range values
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // Picks a token from logits[vocab]. Order: temperature, top-k, top-p, then a seeded draw.
  int32_t sample(const float* logits, int64_t vocab);
  const SamplingParams& params() const { return p_; }

 private:
  SamplingParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

int32_t argmax(const float* x, int64_t n);

// The sampling weights of candidates sorted by descending (scaled) logit, of which the first `keep` survive
// top-k: exp(z - z_max) (unnormalized), cut to the smallest prefix whose share reaches top_p (top_p < 1).
// Returns one weight per kept candidate; *sum is their total. Sampler::sample draws from these.
std::vector<double> kept_weights(const std::pair<float, int32_t>* sorted, size_t keep, float top_p, double* sum);

}  // namespace atom
