// The persistent prefill kernel's work order (backend/cuda/prefill_schedule.h), walked on the CPU for every
// CTA of the launch the kernel would get: every query tile of every (sequence, head) exactly once, each CTA's
// causal work close to the mean, and the CTAs running at once on few heads (the L2 reason for the order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "atom/backend/cuda/prefill_schedule.h"

namespace {

using atom::cuda::PrefillSchedule;
constexpr int kBM = 128;  // query rows per tile, as attention_prefill_ws.cu

struct Launch {
  std::vector<int> nq, len;  // new rows and total length per sequence
  int n_heads, sms;
};

struct Walk {
  std::map<std::tuple<int, int, int>, int> seen;  // (b, h, row tile) -> times taken
  std::vector<double> work;                       // per CTA: keys of its tiles, summed
  std::vector<std::vector<std::pair<int, int>>> order;  // per CTA: its (b, h) in walk order
  int grid = 0;
};

Walk walk(const Launch& l) {
  const int B = int(l.nq.size());
  const int max_q = *std::max_element(l.nq.begin(), l.nq.end());
  const int n_x = (max_q + kBM - 1) / kBM;
  const bool paired = PrefillSchedule::paired_for(B, l.n_heads, n_x, l.sms);
  Walk w;
  w.grid = std::min(PrefillSchedule::n_units_for(B, l.n_heads, n_x, paired), l.sms);
  w.work.assign(size_t(w.grid), 0.0);
  w.order.resize(size_t(w.grid));
  auto tiles_of = [&](int b) { return (l.nq[size_t(b)] + kBM - 1) / kBM; };
  for (int c = 0; c < w.grid; ++c) {
    const PrefillSchedule s(B, l.n_heads, n_x, paired, w.grid, c);
    int u = 0, b = 0, h = 0, rt = 0;
    while (s.next(u, tiles_of, b, h, rt)) {
      ++w.seen[{b, h, rt}];
      const int nq = l.nq[size_t(b)], len = l.len[size_t(b)];
      const int rows = std::min(kBM, nq - rt * kBM);
      w.work[size_t(c)] += double(rows) * double(len - nq + rt * kBM + rows);  // rows x keys seen (upper bound)
      w.order[size_t(c)].push_back({b, h});
    }
  }
  return w;
}

void expect_each_tile_once(const Launch& l, const Walk& w) {
  size_t expected = 0;
  for (size_t b = 0; b < l.nq.size(); ++b) {
    const int n_tiles = (l.nq[b] + kBM - 1) / kBM;
    expected += size_t(n_tiles) * size_t(l.n_heads);
    for (int h = 0; h < l.n_heads; ++h)
      for (int rt = 0; rt < n_tiles; ++rt) {
        auto it = w.seen.find({int(b), h, rt});
        ASSERT_TRUE(it != w.seen.end()) << "tile (" << b << ", " << h << ", " << rt << ") never taken";
        EXPECT_EQ(it->second, 1) << "tile (" << b << ", " << h << ", " << rt << ") taken " << it->second << " times";
      }
  }
  EXPECT_EQ(w.seen.size(), expected) << "tiles outside the batch were taken";
}

double imbalance(const Walk& w) {  // busiest CTA over the mean
  double sum = 0, mx = 0;
  for (double x : w.work) sum += x, mx = std::max(mx, x);
  return mx / (sum / double(w.work.size()));
}

// The benchmark's cells on an H200 (132 SMs): one prefill of one length, and chunked prefill over a prefix.
TEST(PrefillSchedule, BenchmarkCellsTakeEachTileOnceAndBalance) {
  const std::vector<Launch> cells = {
      {{2048}, {2048}, 32, 132},         {{8192}, {8192}, 32, 132}, {{4096, 4096, 4096, 4096}, {4096, 4096, 4096, 4096}, 32, 132},
      {{2048}, {8192}, 32, 132},         {{8192}, {8192}, 8, 132},  {{1000, 777}, {4100, 777}, 8, 132},
      {{128}, {128}, 4, 132} /* unpaired: fewer tiles than SMs */};
  for (const Launch& l : cells) {
    const Walk w = walk(l);
    expect_each_tile_once(l, w);
    // Pairs sum to the same work, so only the last round's spread is left: within 1 + 1 / rounds
    // (+5% for the diagonal tiles' rows, counted in full here).
    const int B = int(l.nq.size());
    const int n_x = (*std::max_element(l.nq.begin(), l.nq.end()) + kBM - 1) / kBM;
    if (B == 1 && l.nq[0] == l.len[0] && PrefillSchedule::paired_for(B, l.n_heads, n_x, l.sms)) {
      const double rounds = double(PrefillSchedule::n_units_for(B, l.n_heads, n_x, true)) / l.sms;
      EXPECT_LE(imbalance(w), 1.0 + 1.0 / rounds + 0.05) << "nq " << l.nq[0] << " heads " << l.n_heads;
    }
  }
}

// Random ragged batches (short and long sequences, single-row decode-like entries, GQA head counts) on
// a few SM counts: still every tile exactly once.
TEST(PrefillSchedule, RandomBatchesTakeEachTileOnce) {
  std::mt19937 rng(std::random_device{}());
  const unsigned seed = rng();
  rng.seed(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  for (int trial = 0; trial < 200; ++trial) {
    Launch l;
    const int B = 1 + int(rng() % 6);
    for (int b = 0; b < B; ++b) {
      const int nq = (rng() % 4 == 0) ? 1 : 1 + int(rng() % 3000);
      l.nq.push_back(nq);
      l.len.push_back(nq + int(rng() % 2000));
    }
    l.n_heads = std::vector<int>{1, 4, 8, 32}[rng() % 4];
    l.sms = std::vector<int>{1, 7, 66, 132}[rng() % 4];
    expect_each_tile_once(l, walk(l));
    if (HasFailure()) return;
  }
}

// The CTAs running at once (each CTA's first unit) cover few (sequence, head)s: with pairs of one head's tiles
// consecutive in the order, 132 CTAs over 32 pairs per head touch ~5 heads, not all 32.
TEST(PrefillSchedule, FirstRoundCoversFewHeads) {
  const Launch l{{8192}, {8192}, 32, 132};
  const Walk w = walk(l);
  std::map<std::pair<int, int>, int> heads;
  for (const auto& o : w.order) ++heads[o.front()];
  EXPECT_LE(heads.size(), 6u);
}

}  // namespace
