#include "atom/model/sampler.h"

#include <algorithm>
#include <cmath>

#include "atom/core/error.h"

namespace atom {

void SamplingParams::validate() const {
  ATOM_CHECK(std::isfinite(temperature) && temperature >= 0.0f && temperature <= 100.0f,
             "temperature must be in [0, 100], got {}", temperature);
  ATOM_CHECK(top_k >= 0, "top_k must be >= 0, got {}", top_k);
  ATOM_CHECK(top_p > 0.0f && top_p <= 1.0f, "top_p must be in (0, 1], got {}", top_p);
}

Sampler::Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) { p.validate(); }

int32_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return int32_t(best);
}

int32_t Sampler::sample(const float* logits, int64_t vocab) {
  if (p_.temperature == 0.0f) return argmax(logits, vocab);
  cand_.resize(size_t(vocab));
  for (int64_t i = 0; i < vocab; ++i) cand_[size_t(i)] = {logits[i] / p_.temperature, int32_t(i)};
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && size_t(p_.top_k) < keep) {
    keep = size_t(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + long(keep), cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  // Softmax over the kept candidates (sorted descending).
  const float mx = cand_[0].first;
  double sum = 0;
  std::vector<double> prob(keep);
  for (size_t i = 0; i < keep; ++i) sum += prob[i] = std::exp(double(cand_[i].first - mx));
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += prob[n++] / sum;
      if (cum >= p_.top_p) break;
    }
    keep = n;
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += prob[i];
  }
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= prob[i];
    if (r <= 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace atom
