// Quantization primitives against brute force: INT4 packing, symmetric group / per-row scales,
// asymmetric KV-cache quantization. Every check is exact (integers, fp16-valued scales) unless a
// bound is stated.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "atom/core/error.h"
#include "atom/quant/int4.h"
#include "atom/quant/kv_quant.h"
#include "atom/quant/quantize.h"
#include "test_util.h"

using namespace atom::quant;
using atom::test::fresh_seed;
using atom::test::randn;

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Independent fp16 rounding (the compiler's _Float16 conversion, round-to-nearest-even).
float fp16_independent(float x) { return float(static_cast<_Float16>(x)); }

// Independent round-half-to-even.
double round_half_even(double t) {
  const double f = std::floor(t), d = t - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1;
}

// The documented scale rule, evaluated independently: fp32 product/division, fp16 rounding.
float brute_scale(const float* x, int64_t n, float clip, int qmax) {
  double amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::abs(double(x[i])));
  const float s = fp16_independent((clip * float(amax)) / float(qmax));
  return std::isinf(s) ? 65504.0f : s;
}

int brute_q(float x, float s, int qmin, int qmax) {
  if (s == 0.0f) return 0;
  const float t = x / s;  // IEEE fp32 division, as documented
  return int(std::clamp(round_half_even(double(t)), double(qmin), double(qmax)));
}

// The activation rule: the exact product x * fl(1/s) (48 significant bits, exact in long double), rounded once.
int brute_q_recip(float x, float s, int qmin, int qmax) {
  if (s == 0.0f) return 0;
  const float r = 1.0f / s;
  const long double t = static_cast<long double>(x) * static_cast<long double>(r);
  if (std::isnan(t)) return 0;
  return int(std::clamp(round_half_even(double(t)), double(qmin), double(qmax)));  // |t| < 2^53: exact in double
}

}  // namespace

// ---------------------------------------------------------------- INT4 packing

TEST(QuantPack, AllSixteenValuesBothNibbles) {
  for (int a = -8; a <= 7; ++a)
    for (int b = -8; b <= 7; ++b) {
      const int8_t q[2] = {int8_t(a), int8_t(b)};
      uint8_t byte = 0xAA;
      pack_int4(q, 2, &byte);
      // element 0 in the low nibble, element 1 in the high nibble, two's complement
      EXPECT_EQ(byte, uint8_t((a & 0xF) | ((b & 0xF) << 4))) << a << " " << b;
      int8_t back[2] = {99, 99};
      unpack_int4(&byte, 2, back);
      EXPECT_EQ(back[0], a);
      EXPECT_EQ(back[1], b);
    }
  for (int a = 0; a <= 15; ++a)
    for (int b = 0; b <= 15; ++b) {
      const uint8_t q[2] = {uint8_t(a), uint8_t(b)};
      uint8_t byte = 0;
      pack_uint4(q, 2, &byte);
      EXPECT_EQ(byte, uint8_t(a | (b << 4)));
      uint8_t back[2];
      unpack_uint4(&byte, 2, back);
      EXPECT_EQ(back[0], a);
      EXPECT_EQ(back[1], b);
    }
  EXPECT_EQ(int4_sext(0x8), -8);
  EXPECT_EQ(int4_sext(0xF), -1);
  EXPECT_EQ(int4_sext(0x7), 7);
}

TEST(QuantPack, RandomRoundTripOddLengths) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (int64_t n : {1, 2, 3, 7, 63, 64, 65, 1001}) {
    std::vector<int8_t> q(static_cast<size_t>(n));
    std::vector<uint8_t> u(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      q[size_t(i)] = int8_t(int(rng() % 16) - 8);
      u[size_t(i)] = uint8_t(rng() % 16);
    }
    std::vector<uint8_t> packed(size_t(int4_bytes(n)), 0xFF);
    pack_int4(q.data(), n, packed.data());
    if (n & 1) EXPECT_EQ(packed.back() >> 4, 0) << "odd length leaves the last high nibble 0";
    std::vector<int8_t> back(static_cast<size_t>(n), 99);
    unpack_int4(packed.data(), n, back.data());
    EXPECT_EQ(back, q) << n;
    for (int64_t i = 0; i < n; ++i)  // nibble position, independently
      EXPECT_EQ(int4_sext(uint8_t(packed[size_t(i / 2)] >> (4 * (i % 2)))), q[size_t(i)]);

    std::fill(packed.begin(), packed.end(), 0xFF);
    pack_uint4(u.data(), n, packed.data());
    std::vector<uint8_t> ub(static_cast<size_t>(n), 99);
    unpack_uint4(packed.data(), n, ub.data());
    EXPECT_EQ(ub, u) << n;
  }
}

// ---------------------------------------------------------------- symmetric quantization

TEST(QuantGroup, MatchesBruteForceScaleRoundingClampClip) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  for (Rounding rd : {Rounding::kDivide, Rounding::kReciprocal})
  for (int bits : {4, 8})
    for (float clip : {1.0f, 0.9f, 0.85f})
      for (auto [n, group] : {std::pair<int64_t, int64_t>{576, 128}, {448, 128}, {195, 64}, {130, 130}, {7, 3}}) {
        SCOPED_TRACE(::testing::Message() << "bits " << bits << " clip " << clip << " n " << n << " g " << group
                                          << (rd == Rounding::kReciprocal ? " reciprocal" : " division"));
        std::vector<float> x = randn(rng, size_t(n), float(std::exp(std::normal_distribution<double>(0, 2)(rng))));
        // Exact ties: values that are an integer + 1/2 times a representable scale.
        x[0] = 2.5f;
        x[1] = -3.5f;
        std::vector<int8_t> q(static_cast<size_t>(n), 99);
        const int64_t ng = num_groups(n, group);
        std::vector<float> s(static_cast<size_t>(ng), kNaN);
        // ... and, for the reciprocal rule, exact ties of the product: a power-of-two scale (clip 1, max 7 * 2^-2
        // or 127 * 2^-2 in the last group) and values (k + 1/2) * 2^-2.
        if (rd == Rounding::kReciprocal && clip == 1.0f) {
          const int64_t b = (num_groups(n, group) - 1) * group, len = n - b;
          for (int64_t i = b; i < n; ++i) x[size_t(i)] = 0.25f * (float(int64_t(rng() % 14)) - 6.5f);
          x[size_t(b)] = 0.25f * float(bits == 4 ? 7 : 127);
          if (len < 2) x[size_t(b)] = 1.75f;
        }
        quantize_sym_groups(x.data(), n, group, bits, clip, q.data(), s.data(), rd);
        const int qmax = bits == 4 ? 7 : 127, qmin = bits == 4 ? -8 : -127;
        for (int64_t g = 0; g < ng; ++g) {
          const int64_t b = g * group, len = std::min(group, n - b);
          const float es = brute_scale(x.data() + b, len, clip, qmax);
          ASSERT_EQ(s[size_t(g)], es) << "group " << g;
          ASSERT_EQ(fp16_independent(s[size_t(g)]), s[size_t(g)]) << "scale is fp16-representable";
          for (int64_t i = b; i < b + len; ++i) {
            const int want = rd == Rounding::kDivide ? brute_q(x[size_t(i)], es, qmin, qmax)
                                                     : brute_q_recip(x[size_t(i)], es, qmin, qmax);
            ASSERT_EQ(int(q[size_t(i)]), want) << "element " << i;
            // Inside the clip range the error is at most half a step (plus fp32 division slop).
            if (std::abs(x[size_t(i)]) <= float(qmax) * es)
              EXPECT_LE(std::abs(x[size_t(i)] - float(q[size_t(i)]) * es), 0.5f * es * (1 + 1e-6f));
          }
        }
      }
}

TEST(QuantGroup, ClipSaturatesLargestValues) {
  // With clip 0.5 the largest value maps well past qmax: it must clamp to +7 / -8.
  const float x[4] = {10.0f, -10.0f, 1.0f, 0.0f};
  int8_t q[4];
  const float s = quantize_sym_segment(x, 4, 4, 0.5f, q);
  EXPECT_EQ(s, fp16_independent(0.5f * 10.0f / 7.0f));
  EXPECT_EQ(q[0], 7);
  EXPECT_EQ(q[1], -8);
  EXPECT_EQ(q[3], 0);
}

TEST(QuantGroup, RoundsHalfToEven) {
  // max 7 with clip 1 gives scale exactly 1: every x.5 is a tie, rounded to the even integer.
  const float x[8] = {7.0f, 0.5f, 1.5f, 2.5f, -0.5f, -2.5f, -3.5f, 6.5f};
  int8_t q[8];
  EXPECT_EQ(quantize_sym_segment(x, 8, 4, 1.0f, q), 1.0f);
  const int expect[8] = {7, 0, 2, 2, 0, -2, -4, 6};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(q[i], expect[i]) << x[i];
}

TEST(QuantGroup, ZeroAndTinySegmentsAreSafe) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  std::vector<float> x = randn(rng, 256);
  std::fill(x.begin() + 128, x.end(), 0.0f);  // an all-zero group
  x[130] = 1e-30f;                            // underflows the fp16 scale: still all zeros, no NaN
  std::vector<float> xn = randn(rng, 11);
  xn[3] = kNaN;
  xn[10] = kNaN;
  for (Rounding rd : {Rounding::kDivide, Rounding::kReciprocal}) {
    SCOPED_TRACE(rd == Rounding::kDivide ? "division" : "reciprocal");
    std::vector<int8_t> q(256, 99);
    float s[2] = {kNaN, kNaN};
    quantize_sym_groups(x.data(), 256, 128, 4, 0.9f, q.data(), s, rd);
    EXPECT_GT(s[0], 0.0f);
    EXPECT_EQ(s[1], 0.0f);
    for (int i = 128; i < 256; ++i) EXPECT_EQ(q[size_t(i)], 0);
    // NaN inputs (in the vector body and in the scalar tail) are skipped by the max and quantize to 0.
    std::vector<int8_t> qn(11, 99);
    const float sn = quantize_sym_segment(xn.data(), 11, 4, 1.0f, qn.data(), rd);
    float amax = 0;
    for (int i = 0; i < 10; ++i)
      if (i != 3) amax = std::max(amax, std::abs(xn[size_t(i)]));
    EXPECT_EQ(sn, fp16_independent(amax / 7.0f));
    EXPECT_EQ(qn[3], 0);
    EXPECT_EQ(qn[10], 0);
    // Saturating scale: inputs beyond the fp16 range give scale 65504 and finite, clamped values (also inf).
    const float big[10] = {1e30f, -1e30f, kInf, -kInf, 1.0f, -1.0f, 3e4f, -3e4f, 0.0f, 7e6f};
    int8_t qb[10];
    EXPECT_EQ(quantize_sym_segment(big, 10, 8, 1.0f, qb, rd), 65504.0f);
    const int want[10] = {127, -127, 127, -127, 0, 0, 0, 0, 0, 107};  // 7e6 / 65504 = 106.9
    for (int i = 0; i < 10; ++i) EXPECT_EQ(qb[i], want[i]) << i;
  }
}

TEST(QuantRow, Int8PerRowMatchesBruteForce) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int64_t rows = 33, cols = 577;
  std::vector<float> x = randn(rng, size_t(rows * cols), 3.0f);
  std::vector<int8_t> q(size_t(rows * cols), 99);
  std::vector<float> s(static_cast<size_t>(rows), kNaN);
  quantize_rows_int8(x.data(), rows, cols, 1.0f, q.data(), s.data());
  for (int64_t r = 0; r < rows; ++r) {
    const float es = brute_scale(x.data() + r * cols, cols, 1.0f, 127);
    ASSERT_EQ(s[size_t(r)], es);
    for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(int(q[size_t(r * cols + j)]), brute_q(x[size_t(r * cols + j)], es, -127, 127));
  }
}

// ---------------------------------------------------------------- KV cache

TEST(KvQuant, MatchesBruteForceAndErrorBound) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int n_heads = 5, head_dim = 64;
  const int64_t m = 17, row = n_heads * head_dim;
  for (int bits : {4, 8}) {
    SCOPED_TRACE(bits);
    const int qmax = bits == 4 ? 15 : 255;
    std::vector<float> x = randn(rng, size_t(m * row), 2.0f);
    for (int64_t r = 0; r < m; ++r) {
      for (int i = 0; i < head_dim; ++i) {
        x[size_t(r * row + 1 * head_dim + i)] += 7.0f;                     // head 1: all positive
        x[size_t(r * row + 2 * head_dim + i)] = -std::abs(x[size_t(r * row + 2 * head_dim + i)]);  // all <= 0
      }
    }
    for (int i = 0; i < head_dim; ++i) x[size_t(3 * row + 4 * head_dim + i)] = 0.0f;  // an all-zero head
    std::vector<float> fq = x;
    kv_fake_quant_rows(fq.data(), m, row, n_heads, head_dim, bits);
    for (int64_t r = 0; r < m; ++r)
      for (int h = 0; h < n_heads; ++h) {
        const float* xh = x.data() + r * row + h * head_dim;
        float lo = 0, hi = 0;
        for (int i = 0; i < head_dim; ++i) lo = std::min(lo, xh[i]), hi = std::max(hi, xh[i]);
        float es = fp16_independent((hi - lo) / float(qmax));
        int ez = es == 0 ? 0 : int(std::clamp(round_half_even(double(-lo / es)), 0.0, double(qmax)));
        const KvHeadParams p = kv_head_params(xh, head_dim, bits);
        ASSERT_EQ(p.scale, es) << r << " " << h;
        ASSERT_EQ(int(p.zero), ez) << r << " " << h;
        std::vector<uint8_t> q(head_dim);
        kv_quantize_head(xh, head_dim, p, bits, q.data());
        for (int i = 0; i < head_dim; ++i) {
          const int eq = es == 0 ? 0
                                 : int(std::clamp(round_half_even(double(xh[i] / es)) + ez, 0.0, double(qmax)));
          ASSERT_EQ(int(q[size_t(i)]), eq);
          const float deq = fq[size_t(r * row + h * head_dim + i)];
          ASSERT_EQ(deq, float(eq - ez) * es) << "fake-quant = (q - zero)·scale";
          // |x - x̂| <= scale/2, widened by the fp16 rounding of the scale (qmax·2⁻¹¹ steps).
          EXPECT_LE(std::abs(xh[i] - deq), es * (0.5f + float(qmax) / 2048.0f) + 1e-6f * std::abs(xh[i]));
        }
      }
  }
}

TEST(KvQuant, PackedLayoutRoundTrip) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  const int n_heads = 3, head_dim = 64;
  const int64_t m = 9, row = n_heads * head_dim, stride = row + 5;  // a strided source
  for (int bits : {4, 8}) {
    std::vector<float> x = randn(rng, size_t(m * stride), 1.5f);
    std::vector<uint8_t> packed(size_t(m * (bits == 4 ? row / 2 : row)), 0xEE);
    std::vector<float> scales(size_t(m * n_heads), kNaN);
    std::vector<uint8_t> zeros(size_t(m * n_heads), 0xEE);
    kv_quantize_rows(x.data(), m, stride, n_heads, head_dim, bits, packed.data(), scales.data(), zeros.data());
    std::vector<float> back(size_t(m * row), kNaN);
    kv_dequantize_rows(packed.data(), scales.data(), zeros.data(), m, n_heads, head_dim, bits, back.data(), row);
    std::vector<float> fq = x;
    kv_fake_quant_rows(fq.data(), m, stride, n_heads, head_dim, bits);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t i = 0; i < row; ++i) ASSERT_EQ(back[size_t(r * row + i)], fq[size_t(r * stride + i)]);
    if (bits == 4) {  // head h of row r starts at byte r·row/2 + h·head_dim/2, element 2i low nibble
      const KvHeadParams p{scales[1 * n_heads + 2], zeros[1 * n_heads + 2]};
      const uint8_t b = packed[size_t(1 * row / 2 + 2 * head_dim / 2 + 3)];
      EXPECT_EQ(kv_dequant(b & 0xF, p), fq[size_t(1 * stride + 2 * head_dim + 6)]);
      EXPECT_EQ(kv_dequant(b >> 4, p), fq[size_t(1 * stride + 2 * head_dim + 7)]);
    }
  }
  EXPECT_THROW(kv_head_params(nullptr, 0, 3), atom::Error);
}
