// The one timing loop of the kernel benchmarks: median over `reps` batches of the per-launch time (ms) of
// fn(i) (fn launches iteration i on stream s; the caller rotates its inputs by i to stay out of L2).
//
// Warm-up runs until at least kWarmupMs of GPU time has passed, not a fixed count. With three warm-up
// launches, the first kernel timed after each M's input fill (bench_gemm's W4A4 column at M = 1024) read
// 1.1-1.4x slower than the same configuration forced right after it (clock / power state, not profiled);
// 50 ms removed most of that, not all (docs/results.md §5d).
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include "atom/backend/cuda/device.h"

namespace atom::bench {

inline double time_ms(cudaStream_t s, const std::function<void(int)>& fn, int reps = 15) {
  constexpr double kWarmupMs = 50.0, kBatchMs = 2.0;
  cuda::Event a, b;
  int it = 0;
  double est = 0;  // ms per launch, from the last warm-up round
  for (double spent = 0; spent < kWarmupMs;) {
    const int n = est > 0 ? int(std::clamp(kBatchMs / est, 1.0, 200.0)) : 3;
    a.record(s);
    for (int i = 0; i < n; ++i) fn(it++);
    b.record(s);
    const double ms = b.since(a);
    spent += ms;
    est = std::max(1e-4, ms / n);
  }
  const int batch = int(std::clamp(kBatchMs / est, 1.0, 200.0));
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    a.record(s);
    for (int i = 0; i < batch; ++i) fn(it++);
    b.record(s);
    t.push_back(double(b.since(a)) / batch);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace atom::bench
