// How many KV splits (flash-decoding) a paged decode-attention launch uses: host-only arithmetic, shared by
// attention_decode.cu and its CPU test (tests/test_decode_splits.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace atom::cuda {

inline constexpr int kDecodeWarps = 4;  // warps per decode CTA; each takes 16-token groups in turn

// Pages per split for `base` (sequence, kv head, head group) CTAs per split of sequences up to max_blocks
// pages: the split count s <= max_splits minimising waves(s) * (groups per warp(s) + kCtaCost) (+ kReduceCost
// for the merge kernel when s > 1), waves = ceil(base * s / slots), each split >= min_pages. A CTA's fixed
// cost (Q load, ring fill, merge) is ~kCtaCost groups, and a ragged extra wave costs a whole CTA time: the
// rule this replaced (splits = ceil(4 * SMs / base)) launched 1.03-1.2 waves at B = 1 / 32k tokens and at
// Llama-3-8B B = 16 / 2k. The model is evaluated when base >= slots too: unsplit is then a ragged number
// of long waves (the int8 kernel, 3 CTAs per SM, at Llama-2-7B B = 16: 512 CTAs on 396 slots, 1.3 waves),
// where splits even the waves out (measured there: 361 us unsplit, 289 at 3 splits; docs/results.md §5e).
// The constants are estimates; bench_attention --split-sweep measures the curve.
inline int choose_pages_per_split(int64_t base, int max_blocks, int page_size, int64_t slots, int max_splits,
                                  int min_pages) {
  constexpr double kCtaCost = 4.0, kReduceCost = 4.0;
  int best_pps = std::max(min_pages, max_blocks);
  double best = 1e300;
  for (int s = 1; s <= max_splits; ++s) {
    const int pps = std::max(min_pages, (max_blocks + s - 1) / s);
    const int n_splits = (max_blocks + pps - 1) / pps;
    if (n_splits != s) continue;  // s is not reachable with whole pages (a smaller s gives the same split)
    const int64_t waves = (base * n_splits + slots - 1) / slots;
    const double groups_per_warp = std::ceil(double(pps) * page_size / 16.0 / kDecodeWarps);
    const double cost = double(waves) * (groups_per_warp + kCtaCost) + (n_splits > 1 ? kReduceCost : 0.0);
    if (cost < best) { best = cost; best_pps = pps; }  // ties keep the fewer splits
  }
  return best_pps;
}

}  // namespace atom::cuda
