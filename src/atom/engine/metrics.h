// Latency statistics of the engine: cumulative histograms (Prometheus-style buckets, upper
// bounds in seconds) and percentiles over raw samples (for the benchmark).
#pragma once
#include <cstdint>
#include <vector>

namespace atom::engine {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& upper_bounds() const { return bounds_; }
  // counts()[i]: observations <= upper_bounds()[i] (cumulative); the +Inf bucket is count().
  std::vector<int64_t> cumulative_counts() const;
  int64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bucket_;  // per bucket, not cumulative
  int64_t count_ = 0;
  double sum_ = 0;
};

// Default buckets: time to first token and time per output token, seconds.
std::vector<double> ttft_buckets();
std::vector<double> tpot_buckets();

// The p-th percentile (p in [0, 100]) with linear interpolation; 0 for no samples.
double percentile(std::vector<double> samples, double p);

}  // namespace atom::engine
