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

std::vector<double> kept_weights(const std::pair<float, int32_t>* sorted, size_t keep, float top_p, double* sum) {
  const float mx = sorted[0].first;
  double total = 0;
  std::vector<double> w(keep);
  for (size_t i = 0; i < keep; ++i) total += w[i] = std::exp(double(sorted[i].first - mx));
  if (top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += w[n++] / total;
      if (cum >= top_p) break;
    }
    w.resize(n);
    total = 0;
    for (double x : w) total += x;
  }
  *sum = total;
  return w;
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
  double sum = 0;
  const std::vector<double> prob = kept_weights(cand_.data(), keep, p_.top_p, &sum);
  keep = prob.size();
  std::uniform_real_distribution<double> u(0.0, sum);
  double r = u(rng_);
  for (size_t i = 0; i < keep; ++i) {
    r -= prob[i];
    if (r <= 0) return cand_[i].second;
  }
  return cand_[keep - 1].second;
}

}  // namespace atom
