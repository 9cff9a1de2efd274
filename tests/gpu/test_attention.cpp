// Paged KV cache and paged attention kernels (backend/cuda/paged_kv.h) against the CPU reference
// (backend/cpu/paged_attention_ref) on fresh random data, outputs poisoned (0xFF = fp16 NaN) before
// every run, page pools pre-filled with NaN-heavy garbage:
//   * kv_append: the whole device pool byte-identical to the reference append (kv_quantize_rows), so
//     scales, zero points and integers are bit-exact and nothing else is touched (slot -1 rows skipped);
//   * decode (split-KV) and prefill / chunked prefill: max |out - ref| <= 2e-3 * max|V|. Why: every output
//     is a convex combination of V rows, so |out| <= max|V|; the kernels round P to fp16 (relative 2^-11,
//     i.e. <= 4.9e-4 * max|V| on the weighted sum), round the output to fp16 (<= 4.9e-4 * max|V|), and the
//     prefill kernel rounds dequantized K/V to fp16 (2^-12 relative; on scores of |s| <~ 10 that is
//     <~ 2.5e-3 relative on single weights, far less on the sum of random-sign terms). Errors of indexing,
//     masking or merging are O(max|V|).
// Lengths 1, page +- 1, tile +- 1, mixed batches, up to 32k context; fp16/int8/int4; head_dim 64/128;
// MHA and GQA (group 3, 8 and 10 > 8, which takes two head groups per kv head).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "../paged_attention_test_util.h"
#include "atom/backend/cuda/paged_kv.h"
#include "atom/core/error.h"
#include "atom/core/half.h"

using namespace atom;
using namespace atom::cuda;

namespace {

#define REQUIRE_GPU()                                                                                \
  do {                                                                                               \
    if (device_count() == 0)                                                                         \
      GTEST_SKIP() << "no CUDA device: GPU tests run in scripts/gpu-check.sh on the device machine"; \
  } while (0)

bool small_only() { return std::getenv("ATOM_GPU_TEST_SMALL") != nullptr; }

uint64_t seed_now() {
  const uint64_t s = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  return s;
}

const char* dt_name(KvDtype d) { return d == KvDtype::F16 ? "f16" : d == KvDtype::I8 ? "i8" : "i4"; }

std::vector<uint16_t> to_fp16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = float_to_fp16(x[i]);
  return h;
}

enum class Path { Dispatch, Decode, Prefill };

struct Case {
  KvDtype dt;
  int D, P, nh, nkv;
  std::vector<int> lens, nq;
  Path path = Path::Dispatch;
  int splits = 0;  // decode only; 0 = automatic
  int groups_per_step = 0;  // decode only; 0 = the default (2 for int8 / int4)
  PrefillKernel prefill_kernel = PrefillKernel::kAuto;  // Path::Prefill only
};

// Builds the batch, appends on the GPU (checked byte-exact), runs attention, compares with the reference.
void run_case(const Case& c) {
  const uint64_t seed = seed_now();
  SCOPED_TRACE(testing::Message() << dt_name(c.dt) << " D=" << c.D << " P=" << c.P << " heads " << c.nh << "/"
                                  << c.nkv << " B=" << c.lens.size() << " splits " << c.splits << " groups/step "
                                  << c.groups_per_step << " prefill kernel "
                                  << prefill_kernel_name(c.prefill_kernel) << " seed " << seed);
  std::mt19937_64 rng(seed);
  const auto pb = test::make_paged_batch(rng, c.dt, c.D, c.P, c.nh, c.nkv, c.lens, c.nq);
  Stream st;
  PagedKvSpec spec;
  spec.n_layers = pb.L.n_layers; spec.n_kv_heads = c.nkv; spec.head_dim = c.D; spec.page_size = c.P;
  spec.dtype = c.dt; spec.n_pages = pb.L.n_pages;
  PagedKvCache cache(spec);
  ASSERT_EQ(cache.bytes(), int64_t(pb.garbage.size()));
  ATOM_CUDA_CHECK(cudaMemcpyAsync(cache.data(), pb.garbage.data(), pb.garbage.size(), cudaMemcpyHostToDevice, st));

  // Append every row, plus three rows with slot -1 that must be skipped.
  const int row = c.nkv * c.D;
  std::vector<float> k = pb.k, v = pb.v;
  std::vector<int32_t> slots = pb.slots;
  for (int i = 0; i < 3; ++i) {
    const int64_t at = int64_t(slots.size() / 2);
    slots.insert(slots.begin() + at, -1);
    k.insert(k.begin() + at * row, size_t(row), 1000.0f);
    v.insert(v.begin() + at * row, size_t(row), -1000.0f);
  }
  DeviceBuffer<uint16_t> dk, dv, dq, dout;
  DeviceBuffer<int32_t> dslots, dcu, dlens, dbt;
  dk.upload(to_fp16(k), st);
  dv.upload(to_fp16(v), st);
  dslots.upload(slots, st);
  kv_append(cache, pb.layer, dk.data(), dv.data(), dslots.data(), int64_t(slots.size()), st);
  std::vector<uint8_t> pool(pb.garbage.size());
  ATOM_CUDA_CHECK(cudaMemcpyAsync(pool.data(), cache.data(), pool.size(), cudaMemcpyDeviceToHost, st));
  st.sync();
  size_t first_diff = pool.size();
  for (size_t i = 0; i < pool.size() && first_diff == pool.size(); ++i)
    if (pool[i] != pb.pool[i]) first_diff = i;
  ASSERT_EQ(first_diff, pool.size()) << "device pool differs from the reference append at byte " << first_diff;

  dq.upload(to_fp16(pb.q), st);
  dcu.upload(pb.cu_q, st);
  dlens.upload(pb.lens, st);
  dbt.upload(pb.block_tables, st);
  dout.resize(size_t(pb.T) * c.nh * c.D);
  dout.fill_bytes(0xFF, st);  // poison: fp16 NaN
  AttentionWorkspace ws(pb.T, c.nh, c.D);
  const float scale = 1.0f / std::sqrt(float(c.D));
  switch (c.path) {
    case Path::Dispatch:
      paged_attention(cache, pb.layer, dq.data(), dcu.data(), dlens.data(), dbt.data(), pb.max_blocks, pb.B, pb.T,
                      c.nh, scale, dout.data(), ws, st, pb.max_q);
      break;
    case Path::Decode:
      paged_attention_decode(cache, pb.layer, dq.data(), dlens.data(), dbt.data(), pb.max_blocks, pb.B, c.nh, scale,
                             dout.data(), ws, st, c.splits, c.groups_per_step);
      break;
    case Path::Prefill:
      paged_attention_prefill(cache, pb.layer, dq.data(), dcu.data(), dlens.data(), dbt.data(), pb.max_blocks, pb.B,
                              pb.T, c.nh, scale, dout.data(), st, pb.max_q, c.prefill_kernel);
      break;
  }
  const auto got16 = dout.download(st);
  const auto ref = test::paged_reference(pb, scale);
  double err = 0;
  size_t worst = 0, nonfinite = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const float g = fp16_to_float(got16[i]);
    if (!std::isfinite(g)) { ++nonfinite; continue; }
    const double e = std::abs(double(g) - ref[i]);
    if (e > err) { err = e; worst = i; }
  }
  EXPECT_EQ(nonfinite, 0u) << "unwritten (poisoned) or non-finite outputs";
  EXPECT_LE(err, 2e-3 * pb.vmax) << "worst at " << worst << " (row " << worst / size_t(c.nh * c.D) << "): got "
                                 << fp16_to_float(got16[worst]) << " want " << ref[worst] << ", max|V| " << pb.vmax;
}

const KvDtype kAll[] = {KvDtype::F16, KvDtype::I8, KvDtype::I4};

TEST(GpuAttention, AppendBitExactManyRows) {
  REQUIRE_GPU();
  // A prefill-sized append (the batch check in run_case does the rest); attention itself is decode here.
  for (KvDtype dt : kAll)
    for (int D : {64, 128})
      for (int P : {16, 32}) run_case({dt, D, P, 4, 2, {small_only() ? 40 : 1000, 3}, {1, 1}});
}

TEST(GpuAttention, DecodeMatchesReference) {
  REQUIRE_GPU();
  for (KvDtype dt : kAll)
    for (int D : {64, 128})
      for (int P : {16, 32})
        for (auto [nh, nkv] : {std::pair{4, 4}, std::pair{12, 4}, std::pair{16, 2}, std::pair{20, 2}}) {
          std::mt19937 r{unsigned(seed_now())};
          std::vector<int> lens = {1, P - 1, P, P + 1, 2 * P - 1, 2 * P + 1};
          for (int i = 0; i < (small_only() ? 1 : 4); ++i) lens.push_back(1 + int(r() % 700));
          run_case({dt, D, P, nh, nkv, lens, std::vector<int>(lens.size(), 1)});
          if (small_only()) break;
        }
}

TEST(GpuAttention, DecodeSplitCounts) {
  REQUIRE_GPU();
  // Forced split counts: 1 (no reduce pass), uneven splits, more splits than some sequences have pages.
  for (KvDtype dt : kAll)
    for (int splits : {1, 3, 7, 64}) {
      Case c{dt, 128, 16, 8, 2, {1, 17, 300, 999}, {1, 1, 1, 1}, Path::Decode, splits};
      run_case(c);
    }
}

TEST(GpuAttention, DecodeGroupsPerStep) {
  REQUIRE_GPU();
  // Both step widths of the quantized caches (the default, 2, runs in every other decode test), over odd and
  // even group counts per warp and split; fp16 takes only 1.
  for (KvDtype dt : {KvDtype::I8, KvDtype::I4})
    for (int gps : {1, 2})
      for (int splits : {0, 1, 5}) {
        Case c{dt, 128, 16, 8, 2, {1, 15, 16, 17, 48, 80, 129, 700}, std::vector<int>(8, 1), Path::Decode, splits, gps};
        run_case(c);
        c.D = 64;
        c.P = 32;
        run_case(c);
      }
  PagedKvSpec spec;
  spec.n_layers = 1; spec.n_kv_heads = 2; spec.head_dim = 128; spec.page_size = 16; spec.dtype = KvDtype::F16;
  spec.n_pages = 4;
  PagedKvCache cache(spec);
  DeviceBuffer<uint16_t> q(size_t(8) * 128), out(size_t(8) * 128);
  DeviceBuffer<int32_t> lens(1), bt(4);
  lens.upload(std::vector<int32_t>{5});
  bt.upload(std::vector<int32_t>{0, 1, 2, 3});
  AttentionWorkspace ws(1, 8, 128);
  Stream st;
  EXPECT_THROW(paged_attention_decode(cache, 0, q.data(), lens.data(), bt.data(), 4, 1, 8, 0.1f, out.data(), ws, st, 0, 2),
               atom::Error);
  EXPECT_THROW(paged_attention_decode(cache, 0, q.data(), lens.data(), bt.data(), 4, 1, 8, 0.1f, out.data(), ws, st, 0, 3),
               atom::Error);
}

TEST(GpuAttention, DecodeLongContext32k) {
  REQUIRE_GPU();
  if (small_only()) GTEST_SKIP() << "large shape";
  for (KvDtype dt : kAll) {
    run_case({dt, 128, 16, 8, 2, {32768, 32767, 5}, {1, 1, 1}});
    run_case({dt, 64, 32, 4, 4, {32769}, {1}});
  }
}

TEST(GpuAttention, PrefillMatchesReference) {
  REQUIRE_GPU();
  for (KvDtype dt : kAll)
    for (int D : {64, 128})
      for (int P : {16, 32})
        for (auto [nh, nkv] : {std::pair{4, 4}, std::pair{12, 4}}) {
          // Full prefill (tile +- 1), chunked prefill over a cached prefix, and decode rows in one batch.
          run_case({dt, D, P, nh, nkv, {63, 130, P + 1, 200, 1, 65}, {63, 64, 2, 129, 1, 65}});
          if (small_only()) break;
        }
}

TEST(GpuAttention, PrefillLongChunk) {
  REQUIRE_GPU();
  if (small_only()) GTEST_SKIP() << "large shape";
  for (KvDtype dt : kAll) run_case({dt, 128, 16, 8, 2, {4100, 777}, {1000, 777}, Path::Prefill});
}

// kWgmmaWsTma differs from kWgmmaWs for fp16 caches only: the other pairs would run kWgmmaWs twice.
bool kernel_differs(PrefillKernel k, KvDtype dt) { return k != PrefillKernel::kWgmmaWsTma || dt == KvDtype::F16; }

// The default tests above run kAuto (the warp-specialized kernel on an sm_90 device); this one runs each kernel by
// name, so the one kAuto does not take on this device is checked too.
TEST(GpuAttention, PrefillEachKernelMatchesReference) {
  REQUIRE_GPU();
  std::vector<PrefillKernel> kernels = {PrefillKernel::kMmaSync};
  if (device_runs_sm90a())
    kernels.insert(kernels.end(), {PrefillKernel::kWgmma, PrefillKernel::kWgmmaWs, PrefillKernel::kWgmmaWsTma});
  else std::printf("note: no sm_90 device, the wgmma prefill kernels are not run\n");
  // The cases of PrefillMatchesReference and PrefillLongChunk, plus the 128-row query tile +- 1 and a
  // prefix long enough for the tile pipelines.
  for (PrefillKernel k : kernels) {
    for (KvDtype dt : kAll) {
      if (!kernel_differs(k, dt)) continue;
      for (int D : {64, 128})
        for (int P : {16, 32})
          for (auto [nh, nkv] : {std::pair{4, 4}, std::pair{12, 4}}) {
            Case c{dt, D, P, nh, nkv, {63, 130, P + 1, 200, 1, 65}, {63, 64, 2, 129, 1, 65}, Path::Prefill};
            c.prefill_kernel = k;
            run_case(c);
            c.lens = {127, 128, 129, 700};
            c.nq = {127, 128, 129, 300};
            run_case(c);
            if (small_only()) break;
          }
    }
    if (small_only()) continue;
    for (KvDtype dt : kAll) {
      if (!kernel_differs(k, dt)) continue;
      Case c{dt, 128, 16, 8, 2, {4100, 777}, {1000, 777}, Path::Prefill};
      c.prefill_kernel = k;
      run_case(c);
    }
  }
}

// The warp-specialized kernel is persistent (one CTA per SM walks its share of the query tiles): batches with
// more query tiles than SMs, so CTAs take several items each (the ring's phases and the consumers' turns
// carry over from one item to the next), some items inactive (short sequences), GQA. The small case keeps
// ~190 items for the sanitizer runs.
TEST(GpuAttention, PrefillManyTilesPerCta) {
  REQUIRE_GPU();
  if (!device_runs_sm90a()) GTEST_SKIP() << "no sm_90 device: the warp-specialized kernel is not run";
  for (PrefillKernel k : {PrefillKernel::kWgmmaWs, PrefillKernel::kWgmmaWsTma})
    for (KvDtype dt : kAll) {
      if (!kernel_differs(k, dt)) continue;
      Case c{dt, 128, 16, 32, 8, {200, 500, 77}, {200, 130, 1}, Path::Prefill};  // 2 x 3 x 32 = 192 items
      c.prefill_kernel = k;
      run_case(c);
      if (small_only()) continue;
      c = Case{dt, 64, 32, 16, 4, {1100, 2000, 300, 9}, {1100, 600, 5, 9}, Path::Prefill};  // 9 x 4 x 16 = 576
      c.prefill_kernel = k;
      run_case(c);
    }
}

TEST(GpuAttention, RejectsBadShapes) {
  PagedKvSpec spec;
  spec.n_layers = 1; spec.n_kv_heads = 2; spec.head_dim = 96; spec.n_pages = 4;
  EXPECT_THROW(spec.validate(), atom::Error);
  spec.head_dim = 64; spec.page_size = 8;
  EXPECT_THROW(PagedKvCache::pages_that_fit(spec, 1 << 20), atom::Error);
  spec.page_size = 16;
  EXPECT_EQ(PagedKvCache::pages_that_fit(spec, spec.bytes_per_page() * 10 + 5), 10);
  EXPECT_THROW(AttentionWorkspace(4, 8, 80), atom::Error);
}

}  // namespace
