#include "atom/engine/metrics.h"

#include <algorithm>
#include <cmath>

#include "atom/core/error.h"

namespace atom::engine {

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  ATOM_CHECK(std::is_sorted(bounds_.begin(), bounds_.end()), "histogram bounds must be sorted");
  bucket_.assign(bounds_.size(), 0);
}

void Histogram::observe(double v) {
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
  if (it != bounds_.end()) ++bucket_[size_t(it - bounds_.begin())];
  ++count_;
  sum_ += v;
}

std::vector<int64_t> Histogram::cumulative_counts() const {
  std::vector<int64_t> c(bucket_.size());
  int64_t run = 0;
  for (size_t i = 0; i < bucket_.size(); ++i) c[i] = run += bucket_[i];
  return c;
}

std::vector<double> ttft_buckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}
std::vector<double> tpot_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1, 2.5};
}

double percentile(std::vector<double> s, double p) {
  if (s.empty()) return 0.0;
  std::sort(s.begin(), s.end());
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * double(s.size() - 1);
  const size_t lo = size_t(std::floor(pos)), hi = std::min(lo + 1, s.size() - 1);
  return s[lo] + (s[hi] - s[lo]) * (pos - double(lo));
}

}  // namespace atom::engine
