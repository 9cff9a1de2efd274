// The decode-attention split choice (backend/cuda/decode_splits.h) against what the H200 measured:
// bench_attention --split-sweep timed every split count of 16 (model, batch, context, KV dtype) rows
// (bench/results/results-h200-2026-12-02-attention-session6.log, docs/results.md §5e). For each row the count that
// choose_pages_per_split picks must have run within 10% of that row's fastest count. The slots are the
// H200's: 132 SMs x 4 CTAs (int4, 118 registers) or 3 (int8, 148 registers) per SM for head_dim 128.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "atom/backend/cuda/decode_splits.h"

namespace {

struct SweepRow {
  const char* name;
  int batch, ctx, kv_heads, ctas_per_sm;
  std::map<int, double> us;  // split count -> measured µs
};

// Counts 1 2 3 4 6 8 12 16 (the longer counts never won and are left out).
std::map<int, double> row(std::initializer_list<double> t) {
  const int counts[] = {1, 2, 3, 4, 6, 8, 12, 16};
  std::map<int, double> m;
  int i = 0;
  for (double v : t) m[counts[i++]] = v;
  return m;
}

TEST(DecodeSplits, ChoicesRanNearTheMeasuredBest) {
  const std::vector<SweepRow> rows = {
      {"Llama-2-7B B16 2k int4", 16, 2048, 32, 4, row({54.5, 62.7, 64.9, 65.6, 73.0, 74.9, 88.8, 98.6})},
      {"Llama-2-7B B16 2k int8", 16, 2048, 32, 3, row({100.4, 90.9, 92.9, 91.9, 102.6, 109.9, 129.3, 146.2})},
      {"Llama-2-7B B16 8k int4", 16, 8192, 32, 4, row({182.9, 184.3, 185.1, 184.0, 191.7, 194.4, 205.2, 217.9})},
      {"Llama-2-7B B16 8k int8", 16, 8192, 32, 3, row({361.1, 298.4, 288.9, 288.5, 288.6, 292.6, 311.1, 323.9})},
      {"Llama-2-7B B64 2k int4", 64, 2048, 32, 4, row({182.4, 198.7, 217.7, 226.9, 252.7, 267.1, 320.7, 360.4})},
      {"Llama-2-7B B64 2k int8", 64, 2048, 32, 3, row({283.2, 291.9, 307.6, 321.2, 360.2, 397.8, 477.3, 546.7})},
      {"Llama-2-7B B256 2k int4", 256, 2048, 32, 4, row({712.6, 777.2, 832.9, 853.7, 961.0, 1042.0, 1273.7})},
      {"Llama-2-7B B256 2k int8", 256, 2048, 32, 3, row({1061.0, 1146.2, 1241.2, 1302.2, 1438.5, 1575.7, 1899.8})},
      {"Llama-3-8B B16 2k int4", 16, 2048, 8, 4, row({26.3, 25.4, 26.6, 26.7, 33.0, 29.8, 34.4, 38.5})},
      {"Llama-3-8B B16 2k int8", 16, 2048, 8, 3, row({31.8, 32.3, 34.5, 42.0, 41.2, 43.9, 49.5, 56.4})},
      {"Llama-3-8B B16 8k int4", 16, 8192, 8, 4, row({82.2, 63.5, 60.7, 59.8, 65.7, 64.5, 70.0, 74.9})},
      {"Llama-3-8B B16 8k int8", 16, 8192, 8, 3, row({100.9, 82.1, 86.4, 108.3, 93.7, 97.2, 100.3, 104.6})},
      {"Llama-3-8B B64 2k int4", 64, 2048, 8, 4, row({56.5, 64.1, 69.9, 72.7, 83.5, 88.3, 108.1, 124.1})},
      {"Llama-3-8B B64 2k int8", 64, 2048, 8, 3, row({104.4, 97.2, 100.7, 103.0, 117.3, 128.5, 155.9, 181.3})},
      {"Llama-3-8B B256 2k int4", 256, 2048, 8, 4, row({187.0, 217.3, 236.8, 248.2, 294.8, 322.2, 407.9})},
      {"Llama-3-8B B256 2k int8", 256, 2048, 8, 3, row({292.1, 320.8, 349.5, 361.0, 424.8, 475.6, 594.0})},
  };
  const int page = 16, min_pages = 64 / page, max_splits = 64, sms = 132;
  for (const SweepRow& r : rows) {
    SCOPED_TRACE(r.name);
    const int max_blocks = r.ctx / page;
    const int pps = atom::cuda::choose_pages_per_split(int64_t(r.batch) * r.kv_heads, max_blocks, page,
                                                       int64_t(r.ctas_per_sm) * sms, max_splits, min_pages);
    ASSERT_GE(pps, min_pages);
    const int splits = (max_blocks + pps - 1) / pps;
    double best = 1e300;
    for (const auto& [s, t] : r.us) best = std::min(best, t);
    const auto it = r.us.find(splits);
    ASSERT_NE(it, r.us.end()) << "picked " << splits << " splits, a count the sweep did not time";
    EXPECT_LE(it->second, 1.10 * best) << "picked " << splits << " splits: " << it->second << " us, best " << best;
  }
}

// A single long sequence still fills the GPU (flash-decoding), in whole waves; a short one is not split
// below min_pages; a batch that fills whole waves unsplit stays unsplit.
TEST(DecodeSplits, LongSingleSequenceFillsOneWave) {
  const int page = 16, min_pages = 4, slots = 4 * 132;
  const int base = 32;  // B = 1, 32 kv heads
  const int max_blocks = 32768 / page;
  const int pps = atom::cuda::choose_pages_per_split(base, max_blocks, page, slots, 64, min_pages);
  const int splits = (max_blocks + pps - 1) / pps;
  EXPECT_LE(int64_t(base) * splits, slots) << splits << " splits";
  EXPECT_GE(int64_t(base) * splits, slots / 2) << splits << " splits";
  EXPECT_EQ(atom::cuda::choose_pages_per_split(base, 3, page, slots, 64, min_pages), min_pages);
  EXPECT_EQ(atom::cuda::choose_pages_per_split(4 * slots, 128, page, slots, 64, min_pages), 128);
}

}  // namespace
