// Sampling on the GPU (gpu_sampling.h): argmax against the host; draws against the CPU Sampler's
// definition of the kept set (temperature, then top-k, then top-p) and its distribution. Fresh seeds.
//   * greedy rows and top_k = 1 rows give the argmax (first index on ties, NaN never wins);
//   * every draw lies in the kept set computed on the host by sorting (vocab up to 128256);
//   * 20,000 draws (2,000 with ATOM_GPU_TEST_SMALL) of one 40-token row match the renormalized kept probabilities within 5 sigma per token;
//   * a draw depends only on its row, params and (seed, counter): the same launch twice and the rows in
//     another order give the same ids.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "atom/backend/cuda/gpu_sampling.h"
#include "atom/model/sampler.h"
#include "gpu_test_util.h"

using namespace gpu_test;

namespace {


TEST(GpuSampling, ArgmaxEqualsHost) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t V : {1, 7, 512, 32000, 128256}) {
    const int64_t R = 9;
    std::vector<float> l(static_cast<size_t>(R * V));
    for (auto& v : l) v = nd(rng);
    if (V > 10) {  // ties: the first index wins; NaN never wins
      const int64_t j = V / 3;
      l[size_t(2 * V + j)] = l[size_t(2 * V + V - 1)] = 1e6f;
      l[size_t(3 * V + j)] = NAN;
    }
    Stream s;
    DeviceBuffer<float> d;
    DeviceBuffer<int32_t> ids;
    d.upload(l, s);
    ids.resize(size_t(R));
    argmax_rows(d.data(), R, V, ids.data(), s);
    const auto got = ids.download(s);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = l.data() + r * V;
      int64_t want = 0;
      for (int64_t j = 1; j < V; ++j)
        if (row[j] > row[want] || std::isnan(row[want])) want = j;
      EXPECT_EQ(got[size_t(r)], want) << "V=" << V << " r=" << r;
    }
  }
}

// The kept tokens' probabilities as the CPU Sampler defines them (0 for tokens not kept); z is computed
// as the kernel does (logit * (1/T)).
std::vector<double> kept_probs(const float* row, int64_t V, const GpuRowSampling& p) {
  std::vector<double> out(static_cast<size_t>(V), 0.0);
  const float inv_t = 1.0f / p.temperature;
  std::vector<std::pair<float, int32_t>> c(static_cast<size_t>(V));
  for (int64_t j = 0; j < V; ++j) c[size_t(j)] = {row[j] * inv_t, int32_t(j)};
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  const size_t top_k = p.top_k > 0 && p.top_k < V ? size_t(p.top_k) : size_t(V);
  double sum = 0;
  const std::vector<double> w = atom::kept_weights(c.data(), top_k, p.top_p, &sum);
  for (size_t i = 0; i < w.size(); ++i) out[size_t(c[i].second)] = w[i] / sum;
  return out;
}

std::vector<int32_t> draw(const std::vector<float>& logits, int64_t V, const std::vector<GpuRowSampling>& p) {
  Stream s;
  DeviceBuffer<float> d;
  DeviceBuffer<GpuRowSampling> dp;
  DeviceBuffer<int32_t> ids;
  d.upload(logits, s);
  dp.upload(p, s);
  ids.resize(p.size());
  std::vector<int32_t> poison(p.size(), -7);
  ids.upload(poison, s);
  sample_rows(d.data(), int64_t(p.size()), V, dp.data(), ids.data(), s);
  return ids.download(s);
}

GpuRowSampling params(float t, int k, float p, uint64_t seed, uint64_t counter) {
  GpuRowSampling g;
  g.temperature = t;
  g.top_k = k;
  g.top_p = p;
  g.seed = seed;
  g.counter = counter;
  return g;
}

TEST(GpuSampling, DrawsMatchTheCpuDistribution) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.5f);
  const int64_t V = 40, N = small_only() ? 2000 : 20000;  // small: compute-sanitizer runs
  std::vector<float> row(static_cast<size_t>(V));
  for (auto& v : row) v = nd(rng);
  for (const GpuRowSampling& base : {params(1.0f, 0, 1.0f, 0, 0), params(0.7f, 5, 1.0f, 0, 0),
                                     params(1.3f, 0, 0.8f, 0, 0), params(1.0f, 10, 0.6f, 0, 0)}) {
    std::vector<float> logits;
    std::vector<GpuRowSampling> p;
    for (int64_t r = 0; r < N; ++r) {
      logits.insert(logits.end(), row.begin(), row.end());
      p.push_back(params(base.temperature, base.top_k, base.top_p, seed, uint64_t(r)));
    }
    const auto ids = draw(logits, V, p);
    const auto want = kept_probs(row.data(), V, base);
    std::vector<double> freq(static_cast<size_t>(V), 0.0);
    for (int32_t id : ids) {
      ASSERT_TRUE(id >= 0 && id < V) << id;
      ASSERT_GT(want[size_t(id)], 0.0) << "token " << id << " is outside the kept set (T=" << base.temperature
                                       << " k=" << base.top_k << " p=" << base.top_p << ")";
      freq[size_t(id)] += 1.0 / double(N);
    }
    for (int64_t j = 0; j < V; ++j) {
      const double pj = want[size_t(j)], sigma = std::sqrt(pj * (1 - pj) / double(N));
      EXPECT_NEAR(freq[size_t(j)], pj, 5 * sigma + 1e-3) << "token " << j << " T=" << base.temperature
                                                         << " k=" << base.top_k << " p=" << base.top_p;
    }
  }
}

TEST(GpuSampling, KeptSetGreedyRowsAndDeterminismAtLargeVocab) {
  REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 4.0f);
  for (int64_t V : small_only() ? std::vector<int64_t>{1000} : std::vector<int64_t>{1000, 49152, 128256}) {
    const int64_t R = 24;
    std::vector<float> logits(static_cast<size_t>(R * V));
    for (auto& v : logits) v = nd(rng);
    std::vector<GpuRowSampling> p;
    for (int64_t r = 0; r < R; ++r) {
      const float t = r % 4 == 0 ? 0.0f : 0.3f + 0.1f * float(rng() % 15);
      const int k = r % 4 == 1 ? 1 : r % 3 == 0 ? int(1 + rng() % 200) : 0;
      const float tp = r % 2 == 0 ? 0.5f + 0.05f * float(rng() % 10) : 1.0f;
      p.push_back(params(t, k, tp, rng(), rng() % 1000));
    }
    const auto ids = draw(logits, V, p);
    for (int64_t r = 0; r < R; ++r) {
      const float* row = logits.data() + r * V;
      const int32_t amax = int32_t(std::max_element(row, row + V) - row);
      if (p[size_t(r)].temperature == 0.0f || p[size_t(r)].top_k == 1) {
        EXPECT_EQ(ids[size_t(r)], amax) << "V=" << V << " row " << r << ": greedy / top_k=1 must be the argmax";
      } else {
        const auto want = kept_probs(row, V, p[size_t(r)]);
        ASSERT_TRUE(ids[size_t(r)] >= 0 && ids[size_t(r)] < V);
        EXPECT_GT(want[size_t(ids[size_t(r)])], 0.0) << "V=" << V << " row " << r << ": outside the kept set";
      }
    }
    EXPECT_EQ(draw(logits, V, p), ids) << "the same launch must give the same ids";
    // rows in reverse order: each row's id follows it
    std::vector<float> rev;
    std::vector<GpuRowSampling> prev(p.rbegin(), p.rend());
    for (int64_t r = R - 1; r >= 0; --r) rev.insert(rev.end(), logits.begin() + r * V, logits.begin() + (r + 1) * V);
    const auto rids = draw(rev, V, prev);
    for (int64_t r = 0; r < R; ++r) EXPECT_EQ(rids[size_t(R - 1 - r)], ids[size_t(r)]) << "V=" << V << " row " << r;
  }
}

}  // namespace
