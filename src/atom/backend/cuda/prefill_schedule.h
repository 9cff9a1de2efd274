// The persistent warp-specialized prefill kernel's work order (attention_prefill_ws.cu): plain C++ with no CUDA
// dependency, so its CPU test (tests/test_prefill_schedule.cpp) checks the order the kernel walks.
//
// The work: each (sequence, head)'s query tiles in pairs, its p-th last (heavy: causal work grows with the
// row) then its p-th first, so a pair's keys add up to about the same for every p. A CTA takes whole pairs: CTA c
// of G takes pair c of round 0, G - 1 - c of round 1, c of round 2, ... (the snake evens out rounds that mix
// sequences). Pairs run in (sequence, head, p) order, so the ~G CTAs running at once cover a few heads and
// their K / V stays in L2 (an x-major order, every head's tile x side by side, read all heads' K / V at once:
// fp16 lost 10-22% to the grid's order at ctx >= 4096, docs/results.md §16d). Static: no global counter to
// reset between launches. Unpaired (a batch with no more tiles than SMs): one tile per unit, the shortest wall.
#pragma once

#include "atom/backend/cuda/paged_kv_layout.h"  // ATOM_HD

namespace atom::cuda {

struct PrefillSchedule {
  int per, n_slots, n_units, G, c, n_heads;
  ATOM_HD PrefillSchedule(int B, int n_heads_, int n_x, bool paired, int G_, int c_)
      : per(paired ? 2 : 1), n_slots(paired ? (n_x + 1) / 2 : n_x), n_units(n_slots * B * n_heads_), G(G_), c(c_),
        n_heads(n_heads_) {}
  // The launch's grid: min(units, SMs) CTAs. paired when the batch has more tiles than SMs.
  static bool paired_for(int B, int n_heads, int n_x, int sms) { return int64_t(n_x) * B * n_heads > sms; }
  static int n_units_for(int B, int n_heads, int n_x, bool paired) {
    return (paired ? (n_x + 1) / 2 : n_x) * B * n_heads;
  }
  // CTA c's next tile from cursor u on: sequence b, query head h, query tile row_tile of the sequence (rows
  // row_tile * kBM ...); u moves past it (u / per: the CTA's round, u % per: the pair's half). tiles_of(b): the
  // sequence's query tile count. false when none is left. Producer and consumers walk the same sequence.
  template <class TilesOf>
  ATOM_HD bool next(int& u, TilesOf&& tiles_of, int& b, int& h, int& row_tile) const {
    for (; (u / per) * G < n_units; ++u) {
      const int k = u / per, j = k * G + ((k & 1) ? G - 1 - c : c);
      if (j >= n_units) continue;
      const int bh = j / n_slots, p = j % n_slots;
      const int n_tiles = tiles_of(bh / n_heads);
      const bool light = per == 2 && (u & 1);
      const int rt = light ? p : n_tiles - 1 - p;
      const bool past = per == 2 ? 2 * p >= n_tiles : p >= n_tiles;  // this sequence has fewer tiles
      if (past || (light && rt == n_tiles - 1 - p)) continue;         // (odd count: the middle tile is alone)
      b = bh / n_heads;
      h = bh % n_heads;
      row_tile = rt;
      ++u;
      return true;
    }
    return false;
  }
};

}  // namespace atom::cuda
