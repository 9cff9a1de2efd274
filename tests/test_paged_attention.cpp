// CPU reference of the paged KV cache and paged attention (backend/cpu/paged_attention_ref): the
// append lands every value where docs/kv-cache.md says, through kv_quantize_rows, and paged attention
// equals brute-force dense causal attention over the fake-quantized K/V (fresh random data, random
// page order, GQA and MHA, decode and chunked prefill rows in one batch).
#include <gtest/gtest.h>

#include <cstring>

#include "atom/quant/int4.h"
#include "atom/quant/kv_quant.h"
#include "paged_attention_test_util.h"
#include "test_util.h"

using namespace atom;
using atom::cuda::KvDtype;

namespace {

const char* name(KvDtype d) { return d == KvDtype::F16 ? "f16" : d == KvDtype::I8 ? "i8" : "i4"; }

// Dense causal attention in double over per-sequence rows, K/V rounded through the cache format.
std::vector<double> dense_attention(const test::PagedBatch& pb, float scale) {
  const int D = pb.L.head_dim, Hkv = pb.L.n_kv_heads, G = pb.n_heads / Hkv, row = Hkv * D;
  std::vector<float> k = pb.k, v = pb.v;
  if (pb.L.dtype != KvDtype::F16) {
    const int bits = cuda::kv_bits(pb.L.dtype);
    quant::kv_fake_quant_rows(k.data(), int64_t(k.size() / row), row, Hkv, D, bits);
    quant::kv_fake_quant_rows(v.data(), int64_t(v.size() / row), row, Hkv, D, bits);
  }
  std::vector<double> out(size_t(pb.T) * pb.n_heads * D);
  int64_t kv0 = 0;
  for (int b = 0; b < pb.B; ++b) {
    const int len = pb.lens[size_t(b)], nq = pb.cu_q[size_t(b) + 1] - pb.cu_q[size_t(b)];
    for (int i = 0; i < nq; ++i)
      for (int h = 0; h < pb.n_heads; ++h) {
        const int pos = len - nq + i, hk = h / G;
        const float* qr = &pb.q[(size_t(pb.cu_q[size_t(b)] + i) * pb.n_heads + h) * D];
        std::vector<double> s(static_cast<size_t>(pos + 1));
        double mx = -1e300, sum = 0;
        for (int t = 0; t <= pos; ++t) {
          double d = 0;
          for (int j = 0; j < D; ++j) d += double(qr[j]) * k[size_t(kv0 + t) * row + hk * D + j];
          s[size_t(t)] = d * scale;
          mx = std::max(mx, s[size_t(t)]);
        }
        for (double& x : s) sum += (x = std::exp(x - mx));
        double* o = &out[(size_t(pb.cu_q[size_t(b)] + i) * pb.n_heads + h) * D];
        for (int t = 0; t <= pos; ++t)
          for (int j = 0; j < D; ++j) o[j] += s[size_t(t)] / sum * v[size_t(kv0 + t) * row + hk * D + j];
      }
    kv0 += len;
  }
  return out;
}

TEST(PagedAttentionRef, MatchesDenseBruteForce) {
  for (KvDtype dt : {KvDtype::F16, KvDtype::I8, KvDtype::I4})
    for (int D : {64, 128})
      for (int P : {16, 32})
        for (auto [nh, nkv] : {std::pair{4, 4}, std::pair{6, 2}}) {
          const uint64_t seed = test::fresh_seed();
          SCOPED_TRACE(testing::Message() << name(dt) << " D=" << D << " P=" << P << " heads " << nh << "/" << nkv
                                          << " seed " << seed);
          std::mt19937_64 rng(seed);
          // Decode rows (nq 1) at lengths 1 and page +- 1, chunked prefill (prefix + chunk), full prefill.
          const std::vector<int> lens = {1, P - 1, P, P + 1, 2 * P + 7, 41};
          const std::vector<int> nq = {1, 1, 3, 1, 9, 41};
          const auto pb = test::make_paged_batch(rng, dt, D, P, nh, nkv, lens, nq);
          const float scale = 1.0f / std::sqrt(float(D));
          const auto got = test::paged_reference(pb, scale);
          const auto want = dense_attention(pb, scale);
          double err = 0;
          for (size_t i = 0; i < got.size(); ++i) err = std::max(err, std::abs(got[i] - want[i]));
          EXPECT_LT(err, 2e-6);  // both in double over the same fp32 values: rounding of the output only
        }
}

TEST(PagedAttentionRef, AppendPlacesValuesAsDocumented) {
  std::mt19937_64 rng(test::fresh_seed());
  for (KvDtype dt : {KvDtype::F16, KvDtype::I8, KvDtype::I4}) {
    SCOPED_TRACE(name(dt));
    const int D = 64, Hkv = 3, P = 16;
    const auto pb = test::make_paged_batch(rng, dt, D, P, 3, Hkv, {20}, {1});
    // Token 17 (page 1 of the table, offset 1), kv head 2, V.
    const int t = 17, h = 2;
    const int32_t page = pb.block_tables[1];
    const uint8_t* blk = pb.pool.data() + pb.L.block_offset(pb.layer, page, h);
    const float* x = &pb.v[size_t(t) * Hkv * D + h * D];
    if (dt == KvDtype::F16) {
      uint16_t e5;
      std::memcpy(&e5, blk + pb.L.v_values() + 1 * D * 2 + 5 * 2, 2);
      EXPECT_EQ(fp16_to_float(e5), x[5]);
      continue;
    }
    const int bits = cuda::kv_bits(dt);
    std::vector<uint8_t> packed(static_cast<size_t>(D)), zero(1);
    std::vector<float> sc(1);
    quant::kv_quantize_rows(x, 1, D, 1, D, bits, packed.data(), sc.data(), zero.data());
    EXPECT_EQ(0, std::memcmp(blk + pb.L.v_values() + 1 * pb.L.row_bytes(), packed.data(), size_t(pb.L.row_bytes())));
    uint16_t s16;
    std::memcpy(&s16, blk + pb.L.v_scales() + 2 * 1, 2);
    EXPECT_EQ(fp16_to_float(s16), sc[0]);
    EXPECT_EQ(blk[pb.L.v_zeros() + 1], zero[0]);
    // int4: element 2i in the low nibble of byte i.
    if (dt == KvDtype::I4) {
      std::vector<uint8_t> q(static_cast<size_t>(D));
      quant::kv_quantize_head(x, D, {sc[0], zero[0]}, 4, q.data());
      EXPECT_EQ(blk[pb.L.v_values() + pb.L.row_bytes() + 3] & 0xF, q[6]);
      EXPECT_EQ(blk[pb.L.v_values() + pb.L.row_bytes() + 3] >> 4, q[7]);
    }
  }
}

TEST(PagedAttentionRef, LayoutSizes) {
  cuda::PagedKvLayout L{2, 8, 128, 16, KvDtype::I4, 10};
  EXPECT_EQ(L.row_bytes(), 64);
  EXPECT_EQ(L.block_bytes(), 2 * 16 * 64 + 16 * 6);
  EXPECT_EQ(L.block_offset(1, 3, 5), ((1 * 10 + 3) * 8 + 5) * L.block_bytes());
  EXPECT_EQ(L.total_bytes(), 2 * 10 * 8 * L.block_bytes());
  L.dtype = KvDtype::F16;
  EXPECT_EQ(L.block_bytes(), 2 * 16 * 128 * 2);
  for (auto dt : {KvDtype::F16, KvDtype::I8, KvDtype::I4})
    for (int D : {64, 128})
      for (int P : {16, 32}) {
        cuda::PagedKvLayout l{1, 1, D, P, dt, 1};
        for (int64_t off : {l.v_values(), l.k_scales(), l.v_scales(), l.k_zeros(), l.v_zeros(), l.block_bytes()})
          EXPECT_EQ(off % 16, 0) << "every part 16-byte aligned";
      }
}

TEST(PagedAttentionRef, RejectsBadArguments) {
  std::mt19937_64 rng(test::fresh_seed());
  auto pb = test::make_paged_batch(rng, KvDtype::I4, 64, 16, 4, 2, {5}, {1});
  std::vector<float> out(static_cast<size_t>(4 * 64));
  test::expect_error([&] {
    cpu::paged_attention_ref(pb.pool.data(), pb.L, pb.layer, pb.q.data(), pb.cu_q.data(), pb.lens.data(),
                             pb.block_tables.data(), pb.max_blocks, pb.B, 3, 1.0f, out.data());
  }, {"multiple of n_kv_heads"});
  pb.lens[0] = 100;  // more blocks than the table has
  test::expect_error([&] {
    cpu::paged_attention_ref(pb.pool.data(), pb.L, pb.layer, pb.q.data(), pb.cu_q.data(), pb.lens.data(),
                             pb.block_tables.data(), pb.max_blocks, pb.B, 4, 1.0f, out.data());
  }, {"blocks"});
}

}  // namespace
