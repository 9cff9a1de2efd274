// Random paged-KV batches shared by the CPU reference tests (tests/test_paged_attention.cpp) and the
// GPU attention tests (tests/gpu/test_attention.cpp): fp16-rounded K/V/Q, pages handed out in a random
// order, a pool pre-filled with random garbage (NaN patterns included) so that reads past a sequence's
// end, or of the wrong page, show up.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "atom/backend/cpu/paged_attention_ref.h"
#include "atom/core/half.h"

namespace atom::test {

struct PagedBatch {
  cuda::PagedKvLayout L;
  int layer = 0, n_heads = 0, B = 0, max_blocks = 0, max_q = 0;
  int64_t T = 0;
  std::vector<int32_t> lens, cu_q, block_tables;
  std::vector<float> k, v;          // all sequences' rows, [sum(lens), n_kv*D], fp16-rounded
  std::vector<int32_t> slots;       // slot of each of those rows
  std::vector<float> q;             // [T, n_heads*D], fp16-rounded
  std::vector<uint8_t> pool;        // host pool after the reference append
  std::vector<uint8_t> garbage;     // the pool before it
  float vmax = 0;                   // max |dequantized V| (bounds every attention output)
};

inline float fp16r(float x) { return fp16_to_float(float_to_fp16(x)); }

// lens[b] keys, nq[b] <= lens[b] queries each. K/V rows ~ N(0, 1) with a few larger channels.
inline PagedBatch make_paged_batch(std::mt19937_64& rng, cuda::KvDtype dtype, int head_dim, int page_size,
                                   int n_heads, int n_kv_heads, const std::vector<int>& lens,
                                   const std::vector<int>& nq) {
  PagedBatch pb;
  pb.B = int(lens.size());
  pb.n_heads = n_heads;
  pb.layer = 1;
  pb.lens.assign(lens.begin(), lens.end());
  int64_t pages = 0;
  for (int L : lens) {
    pb.max_blocks = std::max(pb.max_blocks, (L + page_size - 1) / page_size);
    pages += (L + page_size - 1) / page_size;
  }
  pb.max_blocks = std::max(pb.max_blocks, 1) + 1;  // a spare column: tables wider than needed
  pb.L = {2, n_kv_heads, head_dim, page_size, dtype, pages + 3};
  std::vector<int32_t> perm(static_cast<size_t>(pb.L.n_pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  pb.block_tables.assign(size_t(pb.B) * pb.max_blocks, -1);
  size_t next = 0;
  const int row = n_kv_heads * head_dim;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  pb.cu_q.push_back(0);
  for (int b = 0; b < pb.B; ++b) {
    for (int j = 0; j < (lens[size_t(b)] + page_size - 1) / page_size; ++j)
      pb.block_tables[size_t(b) * pb.max_blocks + j] = perm[next++];
    for (int t = 0; t < lens[size_t(b)]; ++t) {
      const int32_t page = pb.block_tables[size_t(b) * pb.max_blocks + t / page_size];
      pb.slots.push_back(page * page_size + t % page_size);
      for (int i = 0; i < row; ++i) {
        const float boost = (i % 37 == 5) ? 4.0f : 1.0f;  // outlier channels, as real K has
        pb.k.push_back(fp16r(boost * nd(rng)));
        pb.v.push_back(fp16r(nd(rng)));
      }
    }
    pb.cu_q.push_back(pb.cu_q.back() + nq[size_t(b)]);
    pb.max_q = std::max(pb.max_q, nq[size_t(b)]);
  }
  pb.T = pb.cu_q.back();
  pb.q.resize(size_t(pb.T) * n_heads * head_dim);
  for (float& x : pb.q) x = fp16r(nd(rng));
  pb.garbage.resize(size_t(pb.L.total_bytes()));
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& x : pb.garbage) x = uint8_t(byte(rng) | 0x7C);  // many fp16 Inf/NaN patterns
  pb.pool = pb.garbage;
  cpu::paged_kv_append_ref(pb.pool.data(), pb.L, pb.layer, pb.k.data(), pb.v.data(), pb.slots.data(),
                           int64_t(pb.slots.size()));
  std::vector<float> r(static_cast<size_t>(head_dim));
  for (size_t t = 0; t < pb.slots.size(); ++t)
    for (int h = 0; h < n_kv_heads; ++h) {
      cpu::paged_kv_read_row(pb.pool.data(), pb.L, pb.layer, pb.slots[t] / page_size, pb.slots[t] % page_size, h,
                             true, r.data());
      for (float x : r) pb.vmax = std::max(pb.vmax, std::abs(x));
    }
  return pb;
}

inline std::vector<float> paged_reference(const PagedBatch& pb, float scale) {
  std::vector<float> out(size_t(pb.T) * pb.n_heads * pb.L.head_dim);
  cpu::paged_attention_ref(pb.pool.data(), pb.L, pb.layer, pb.q.data(), pb.cu_q.data(), pb.lens.data(),
                           pb.block_tables.data(), pb.max_blocks, pb.B, pb.n_heads, scale, out.data());
  return out;
}

}  // namespace atom::test
