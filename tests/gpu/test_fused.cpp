// Fused activation kernels (fused_quant.h) and the W8A8 GEMM (w8a8_gemm.h) against the CPU reference,
// fresh random inputs, outputs poisoned before each run.
//   fused kernels, two checks per run:
//     (1) the fp16 row the kernel produced vs the CPU op (cpu::rmsnorm / cpu::silu_mul / identity) rounded
//         to fp16: equal, except RMSNorm/SiLU values may differ by 1 fp16 ulp in at most 0.5% of elements
//         (rounding order: the GPU's tree-reduced sum of squares / expf vs glibc; see fused_quant.h);
//     (2) the INT4/INT8 Atom activations and the W8A8 INT8 + scales: bit-exact vs the CPU quantizers
//         (atom_quantize_activations, w8a8_quantize_activations) applied to that fp16 row.
//   W8A8 GEMM: fp32 outputs bit-exact vs W8A8Linear::forward (same integers, same scale formula), fp16
//   outputs equal to the fp16 rounding of the CPU value, accumulation = residual + CPU value exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "atom/backend/cpu/ops.h"
#include "atom/backend/cuda/blas_baselines.h"
#include "atom/backend/cuda/fused_quant.h"
#include "atom/backend/cuda/w8a8_gemm.h"
#include "atom/core/error.h"
#include "atom/quant/quantize.h"
#include "atom/quant/w8a8_linear.h"
#include "gpu_test_util.h"

using namespace gpu_test;

namespace {

enum class Op { Norm, Copy, Silu };

uint16_t to_bits(float v, ActDtype dt) { return dt == ActDtype::BF16 ? float_to_bf16(v) : float_to_fp16(v); }
float from_bits(uint16_t b, ActDtype dt) { return dt == ActDtype::BF16 ? bf16_to_float(b) : fp16_to_float(b); }

// Rows of `cols` values representable in dt (random_acts' mix of scales, zero rows, tiny rows).
std::vector<float> inputs(int64_t m, int64_t cols, ActDtype dt, std::mt19937_64& rng) {
  std::vector<float> x = random_acts(m, cols, rng);
  if (dt == ActDtype::BF16)
    for (float& v : x) v = bf16_to_float(float_to_bf16(v));
  return x;
}

DeviceBuffer<uint8_t> upload_as(const std::vector<float>& x, ActDtype dt, cudaStream_t s) {
  DeviceBuffer<uint8_t> d;
  if (dt == ActDtype::F32) {
    d.upload(reinterpret_cast<const uint8_t*>(x.data()), x.size() * 4, s);
  } else {
    std::vector<uint16_t> h(x.size());
    for (size_t i = 0; i < x.size(); ++i) h[i] = to_bits(x[i], dt);
    d.upload(reinterpret_cast<const uint8_t*>(h.data()), h.size() * 2, s);
  }
  return d;
}

void check_fused(Op op, ActDtype dt, int64_t K, int64_t m, bool gather_rows, std::mt19937_64& rng,
                 int n_outlier = 128) {
  SCOPED_TRACE("op=" + std::to_string(int(op)) + " dtype=" + std::to_string(int(dt)) + " K=" + std::to_string(K) +
               " m=" + std::to_string(m) + (gather_rows ? " gathered" : "") + " O=" +
               std::to_string(n_outlier));
  Stream st;
  const int64_t cols = op == Op::Silu ? 2 * K : K;
  const int64_t m_in = gather_rows ? m + 3 : m;
  const std::vector<float> x = inputs(m_in, cols, dt, rng);
  std::vector<int32_t> rows(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) rows[size_t(i)] = gather_rows ? int32_t(rng() % uint64_t(m_in)) : int32_t(i);
  std::uniform_real_distribution<float> ud(0.5f, 1.5f);
  std::vector<float> w(static_cast<size_t>(K)), smooth(static_cast<size_t>(K));
  for (auto& v : w) v = ud(rng);
  for (auto& v : smooth) v = ud(rng) * ud(rng);
  const float eps = 1e-5f;

  // CPU op in fp32 on the gathered rows, rounded to fp16
  std::vector<float> xin(static_cast<size_t>(m * cols)), ref(static_cast<size_t>(m * K));
  for (int64_t i = 0; i < m; ++i)
    std::copy_n(&x[size_t(rows[size_t(i)] * cols)], cols, &xin[size_t(i * cols)]);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = &xin[size_t(i * cols)];
    float* ri = &ref[size_t(i * K)];
    if (op == Op::Norm) cpu::rmsnorm(xi, w.data(), ri, 1, K, eps);
    else if (op == Op::Silu) cpu::silu_mul(xi, xi + K, ri, K);
    else std::copy_n(xi, K, ri);
  }

  quant::AtomConfig acfg;
  acfg.n_outlier = n_outlier;
  const quant::AtomLayout QL(K, acfg);
  const GpuAtomLayout L = make_gpu_layout(K, QL.n_outlier, QL.group);
  const auto perm = random_perm(K, rng);
  DeviceBuffer<int32_t> drows;
  DeviceBuffer<uint16_t> dstage;
  dstage.upload(atom_stage_table(perm, L), st);
  drows.upload(rows, st);
  DeviceBuffer<float> dw, dsmooth, di8s;
  dw.upload(w, st);
  dsmooth.upload(smooth, st);
  auto dx = upload_as(x, dt, st);
  DeviceBuffer<uint16_t> f16(static_cast<size_t>(m * K));
  DeviceBuffer<int8_t> i8(static_cast<size_t>(m * K));
  di8s.resize(static_cast<size_t>(m));
  GpuAtomActs acts;
  acts.resize(m, L);
  for (auto* b : {&acts.q4}) b->fill_bytes(0xA5, st);
  acts.scale.fill_bytes(0xFF, st);
  acts.q8.fill_bytes(0x80, st);
  acts.oscale.fill_bytes(0xFF, st);
  f16.fill_bytes(0xFF, st);  // NaN
  i8.fill_bytes(0x80, st);
  di8s.fill_bytes(0xFF, st);

  FusedOut o;
  o.f16 = f16.data();
  o.i8 = i8.data();
  o.i8_scale = di8s.data();
  o.smooth = dsmooth.data();
  o.atom = &acts;
  o.stage = dstage.data();
  o.L = L;
  o.a_clip = acfg.a_clip;
  o.a_outlier_clip = acfg.a_outlier_clip;
  if (op == Op::Norm) rmsnorm_quant(dx.data(), dt, m, K, dw.data(), eps, o, st, gather_rows ? drows.data() : nullptr);
  else if (op == Op::Silu) silu_mul_quant(dx.data(), dt, m, K, o, st);
  else reorder_quant(dx.data(), dt, m, K, o, st);
  st.sync();

  // (1) the fp16 row
  const auto g16 = f16.download();
  std::vector<float> g(static_cast<size_t>(m * K));
  int64_t off1 = 0, bad = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    g[i] = fp16_to_float(g16[i]);
    const uint16_t want = float_to_fp16(ref[i]);
    if (g16[i] == want) continue;
    const int d = std::abs(int(int16_t(g16[i])) - int(int16_t(want)));  // same sign: ulp distance
    if (op != Op::Copy && d == 1 && (g16[i] ^ want) < 0x8000) ++off1;
    else if (bad++ < 5) ADD_FAILURE() << "fp16 row at " << i << ": gpu " << g[i] << " cpu " << ref[i];
  }
  EXPECT_EQ(bad, 0);
  EXPECT_LE(off1, std::max<int64_t>(1, m * K / 200)) << "too many 1-ulp differences";

  // (2) quantizers on that row, bit-exact
  quant::AtomActivations ca;
  quant::atom_quantize_activations(g.data(), m, perm, QL, acfg, ca);
  expect_acts_equal(acts, ca, L, m);
  std::vector<int8_t> cq(static_cast<size_t>(m * K));
  std::vector<float> cs(static_cast<size_t>(m));
  quant::w8a8_quantize_activations(g.data(), m, K, smooth, cq.data(), cs.data());
  const auto gq = i8.download();
  const auto gs = di8s.download();
  EXPECT_EQ(std::memcmp(gq.data(), cq.data(), cq.size()), 0) << "W8A8 INT8 values differ";
  EXPECT_EQ(std::memcmp(gs.data(), cs.data(), cs.size() * 4), 0) << "W8A8 scales differ";
}

TEST(GpuFused, KernelsMatchCpuReference) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  std::vector<int64_t> ks = {576, 1536, 396, 4096};  // 396: rows not a multiple of 8 (scalar path), ragged group of 12
  std::vector<int64_t> ms = {1, 7, 130};
  if (small_only()) ks = {576, 396}, ms = {1, 9};
  for (Op op : {Op::Norm, Op::Copy, Op::Silu})
    for (ActDtype dt : {ActDtype::F32, ActDtype::F16, ActDtype::BF16})
      for (int64_t k : ks)
        for (int64_t m : ms) check_fused(op, dt, k, m, false, rng);
  check_fused(Op::Norm, ActDtype::F32, 576, 5, true, rng);  // final-norm row gather
  if (small_only()) return;
  // Enough rows for one block per row (>= 2 per SM) and more segments than a block's 32 teams take in one
  // pass (86 at K = 11008), with the partial last group and the outlier tail after them.
  for (Op op : {Op::Norm, Op::Copy, Op::Silu}) check_fused(op, ActDtype::F16, 4096, 300, false, rng);
  check_fused(Op::Silu, ActDtype::F32, 11008, 270, false, rng);
  // Few rows of a wide input: the row's 86 segments are split over 3 blocks (seg_chunk), each redoing phase 1.
  for (Op op : {Op::Norm, Op::Copy, Op::Silu}) check_fused(op, ActDtype::F16, 11008, 3, false, rng);
  // Outlier tails other than 128 channels: none, one with idle lanes (64), two chunks (256: one team loops).
  for (int o : {0, 64, 256})
    for (Op op : {Op::Norm, Op::Copy}) check_fused(op, ActDtype::F16, 1536, 40, false, rng, o);
  // Long rows: 24576 channels of fp32 gate and up (a 48 KiB staged row, 192 segments over 6 passes).
  check_fused(Op::Silu, ActDtype::F32, 24576, 2, false, rng);
}

// Many rows (more than one wave of blocks: 132 SMs x 2-4 resident) in the shapes the kernels run at prefill,
// with rows left over after the last full wave: fp16 / fp32 (gathered) / bf16 inputs, K = 576 to 24576.
TEST(GpuFused, ManyRowsMatchCpuReference) {
  REQUIRE_GPU();
  if (small_only()) GTEST_SKIP() << "large row counts only";
  std::mt19937_64 rng(fresh_seed());
  for (Op op : {Op::Norm, Op::Copy, Op::Silu}) check_fused(op, ActDtype::F16, 576, 2999, false, rng);
  check_fused(Op::Norm, ActDtype::F32, 576, 2100, true, rng);  // gathered rows
  check_fused(Op::Copy, ActDtype::BF16, 4096, 1201, false, rng);
  check_fused(Op::Silu, ActDtype::F16, 11008, 801, false, rng);
  check_fused(Op::Silu, ActDtype::F32, 24576, 1100, false, rng);
}

// reorder_quant of the fp16 rows x [m, K] (Atom reorder perm) into poisoned Atom buffers, bit for bit against
// the CPU quantizer on the same values.
void expect_reorder_quant_matches_cpu(const std::vector<float>& x, int64_t m, const std::vector<int32_t>& perm,
                                      const quant::AtomConfig& acfg, Stream& st) {
  const int64_t K = int64_t(perm.size());
  const quant::AtomLayout QL(K, acfg);
  const GpuAtomLayout L = make_gpu_layout(K, QL.n_outlier, QL.group);
  DeviceBuffer<uint16_t> dstage;
  dstage.upload(atom_stage_table(perm, L), st);
  auto dx = upload_as(x, ActDtype::F16, st);
  GpuAtomActs acts;
  acts.resize(m, L);
  acts.q4.fill_bytes(0xA5, st);
  acts.scale.fill_bytes(0xFF, st);
  acts.q8.fill_bytes(0x80, st);
  acts.oscale.fill_bytes(0xFF, st);
  FusedOut o;
  o.atom = &acts;
  o.stage = dstage.data();
  o.L = L;
  o.a_clip = acfg.a_clip;
  o.a_outlier_clip = acfg.a_outlier_clip;
  reorder_quant(dx.data(), ActDtype::F16, m, K, o, st);
  st.sync();
  quant::AtomActivations ca;
  quant::atom_quantize_activations(x.data(), m, perm, QL, acfg, ca);
  expect_acts_equal(acts, ca, L, m);
}

// Products x * fl(1/s) exactly on a half-integer, and one fp16 step either side: the activation rule
// (quantize.h's sym_quant_recip) rounds the exact product once, half to even. Half of the segments get a
// power-of-two scale (fl(1/s) exact: (k + 0.5) * s are exact ties); the others a general one, where the
// rounded product fl(x * r) often lands on a half-integer the exact one is not on, so a kernel that multiplies
// and then rounds (two roundings) fails; the counts below show the inputs exercise both.
TEST(GpuFused, HalfwayProductsMatchCpu) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  Stream st;
  const quant::AtomConfig acfg;
  for (int64_t K : {1536, 4096}) {
    SCOPED_TRACE("K=" + std::to_string(K));
    const int64_t m = 40;
    const quant::AtomLayout QL(K, acfg);
    const GpuAtomLayout L = make_gpu_layout(K, QL.n_outlier, QL.group);
    const auto perm = random_perm(K, rng);
    std::uniform_real_distribution<float> ud(0.05f, 20.0f);
    std::vector<float> x(static_cast<size_t>(m * K));
    int64_t ties = 0, double_rounding = 0, differs_from_division = 0;
    // one segment (reordered positions [j0, j0 + n)): its max A, the rest (k + 0.5) * s, k in [qmin, qmax)
    auto fill_segment = [&](float* row, int64_t j0, int64_t n, int bits, float clip) {
      float A = fp16_to_float(float_to_fp16(ud(rng)));
      if (rng() % 2) {  // a power-of-two scale, when one fp16 A within a few steps of s * qmax / clip gives it
        const float p2 = std::ldexp(1.0f, int(rng() % 8) - 5);
        uint16_t h = float_to_fp16(p2 * float(quant::sym_qmax(bits)) / clip);
        for (int d = 0; d < 8 && quant::sym_scale(fp16_to_float(h), clip, bits) != p2; ++d)
          h = uint16_t(h + (quant::sym_scale(fp16_to_float(h), clip, bits) < p2 ? 1 : -1));
        if (quant::sym_scale(fp16_to_float(h), clip, bits) == p2) A = fp16_to_float(h);
      }
      const float s = quant::sym_scale(A, clip, bits), r = quant::sym_recip(s);
      const int qmin = quant::sym_qmin(bits), qmax = quant::sym_qmax(bits);
      row[perm[size_t(j0)]] = A;
      for (int64_t j = 1; j < n; ++j) {
        const int k = qmin + int(rng() % uint64_t(qmax - qmin));
        uint16_t h = float_to_fp16((float(k) + 0.5f) * s);
        if (rng() % 4 == 0) h = uint16_t(h + (rng() % 2 ? 1 : -1));  // one fp16 step off (same sign)
        const float v = fp16_to_float(h);
        row[perm[size_t(j0 + j)]] = v;
        const double exact = double(v) * double(r);
        ties += exact == std::floor(exact) + 0.5;
        double_rounding += std::nearbyint(v * r) != std::nearbyint(exact);
        differs_from_division += quant::sym_quant(v, s, bits) != quant::sym_quant_recip(v, r, bits);
      }
    };
    for (int64_t r = 0; r < m; ++r) {
      float* row = &x[size_t(r * K)];
      for (int64_t g = 0; g < QL.n_groups; ++g)
        fill_segment(row, g * QL.group, std::min<int64_t>(QL.group, L.k_normal - g * QL.group), 4, acfg.a_clip);
      fill_segment(row, L.k_normal, L.n_outlier, 8, acfg.a_outlier_clip);
    }
    ASSERT_GT(ties, m * K / 32) << "too few exact half-integer products";
    ASSERT_GT(double_rounding, 0) << "the inputs do not defeat a multiply followed by a rounding";
    ASSERT_GT(differs_from_division, 0) << "the inputs do not tell the activation rule from the division rule";
    std::printf("K=%lld: %lld exact half-integer products, %lld where fl(x * r) rounds the other way, %lld where "
                "x / s does\n", (long long)K, (long long)ties, (long long)double_rounding, (long long)differs_from_division);

    expect_reorder_quant_matches_cpu(x, m, perm, acfg, st);
  }
}

// NaN and ±inf activations: a NaN is skipped by the segment's max and quantizes to 0 (the kernel finds such a
// segment by a NaN-propagating max and takes the scalar rule there), an inf saturates the scale (65504) and
// clamps; in INT4 groups, in the INT8 tail and in a ragged last group (K = 1000: 872 normal channels).
TEST(GpuFused, NanAndInfActivationsMatchCpu) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  Stream st;
  const quant::AtomConfig acfg;
  for (int64_t K : {1000, 4096}) {
    SCOPED_TRACE("K=" + std::to_string(K));
    const int64_t m = 12;
    const quant::AtomLayout QL(K, acfg);
    const auto perm = random_perm(K, rng);
    std::vector<float> x = random_acts(m, K, rng);
    const float kInf = std::numeric_limits<float>::infinity(), kNaN = std::numeric_limits<float>::quiet_NaN();
    for (int64_t r = 0; r < m; ++r)
      for (int n = 0; n < 6; ++n) {  // a few specials per row, anywhere (perm spreads them over segments)
        const int64_t j = int64_t(rng() % uint64_t(K));
        x[size_t(r * K + j)] = r % 3 == 0 ? kNaN : r % 3 == 1 ? (n % 2 ? kInf : -kInf) : (n % 2 ? kNaN : kInf);
      }
    for (int64_t j = QL.k_normal; j < K; ++j) x[size_t(0 * K + perm[size_t(j)])] = kNaN;  // row 0: an all-NaN tail
    expect_reorder_quant_matches_cpu(x, m, perm, acfg, st);
  }
}

// The staging table's contract with the kernel (host only, runs without a GPU): phase 2's lane t of a segment
// reads its two 16-byte pieces at 8t and 64 + 8t of the staged segment; those must hold exactly the reordered
// channels the GEMM's nibble order gives that lane (INT4: 32c + 8h + i and 32c + 16 + 8h + i for t = 2c + h;
// INT8 tail: 16t + i and 16t + 8 + i), and the 8 lanes of one load must cover the 32 banks once (fp16 staging).
TEST(GpuFused, StagingTableMatchesThePhase2Reads) {
  std::mt19937_64 rng(fresh_seed());
  for (int64_t K : {576, 396, 1536, 4096, 11008}) {
    SCOPED_TRACE("K=" + std::to_string(K));
    const GpuAtomLayout L = make_gpu_layout(K, 128, 128);
    const auto perm = random_perm(K, rng);
    const std::vector<uint16_t> stage = atom_stage_table(perm, L);
    ASSERT_EQ(int64_t(stage.size()), K);
    std::vector<int64_t> reordered_at(static_cast<size_t>(atom_staged_len(L)), -1);  // staged slot -> reordered channel
    std::vector<int64_t> inv(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) inv[size_t(perm[size_t(k)])] = k;
    for (int64_t j = 0; j < K; ++j) {
      ASSERT_LT(int64_t(stage[size_t(j)]), atom_staged_len(L));
      ASSERT_EQ(reordered_at[stage[size_t(j)]], -1) << "two channels staged at " << stage[size_t(j)];
      reordered_at[stage[size_t(j)]] = inv[size_t(j)];
    }
    int64_t bad = 0;
    for (int64_t g = 0; g < L.n_groups; ++g)
      for (int t = 0; t < 8; ++t)
        for (int piece = 0; piece < 2; ++piece)
          for (int i = 0; i < 8; ++i) {
            const int64_t want = g * 128 + 32 * (t / 2) + 16 * piece + 8 * (t % 2) + i;
            const int64_t got = reordered_at[size_t(g * 128 + 64 * piece + 8 * t + i)];
            bad += want < L.k_normal ? got != want : got != -1;  // ragged padding: no channel (staged as 0)
          }
    for (int64_t c0 = 0; c0 < L.n_outlier; c0 += 128)
      for (int t = 0; 16 * t + c0 < L.n_outlier; ++t)
        for (int piece = 0; piece < 2; ++piece)
          for (int i = 0; i < 8; ++i)
            bad += reordered_at[size_t(L.n_groups * 128 + c0 + 64 * piece + 8 * t + i)] !=
                   L.k_normal + c0 + 16 * t + 8 * piece + i;
    EXPECT_EQ(bad, 0) << "staged slots holding the wrong reordered channel";
    for (int piece = 0; piece < 2; ++piece) {  // banks of one quarter-warp's 16-byte loads (fp16: 2 bytes a slot)
      std::vector<int> hits(32, 0);
      for (int t = 0; t < 8; ++t)
        for (int w = 0; w < 4; ++w) ++hits[size_t(((64 * piece + 8 * t) * 2 / 4 + w) % 32)];
      for (int b = 0; b < 32; ++b) EXPECT_EQ(hits[size_t(b)], 1) << "bank " << b;
    }
  }
  std::vector<int32_t> dup = random_perm(576, rng);
  dup[5] = dup[6];
  EXPECT_THROW(atom_stage_table(dup, make_gpu_layout(576, 128, 128)), atom::Error);
  EXPECT_THROW(atom_stage_table(random_perm(575, rng), make_gpu_layout(576, 128, 128)), atom::Error);
}

TEST(GpuFused, RejectsBadShapes) {
  REQUIRE_GPU();
  FusedOut none;
  DeviceBuffer<uint16_t> x(64);
  EXPECT_THROW(reorder_quant(x.data(), ActDtype::F16, 1, 64, none, nullptr), atom::Error);  // no output
  DeviceBuffer<uint16_t> y(64);
  FusedOut o;
  o.f16 = y.data();
  EXPECT_THROW(reorder_quant(x.data(), ActDtype::F16, 1, 40000, o, nullptr), atom::Error);  // K too large
}

TEST(GpuW8A8, GemmMatchesW8A8Linear) {
  REQUIRE_GPU();
  std::mt19937_64 rng(fresh_seed());
  Stream st;
  BlasBaselines blas;
  struct S { int64_t n, k; };
  std::vector<S> shapes = {{576, 576}, {192, 576}, {1536, 576}, {576, 1536}};
  if (!small_only()) shapes.push_back({4096, 4096});
  for (S sh : shapes) {
    std::normal_distribution<float> nd(0.0f, 0.05f);
    std::vector<float> w(static_cast<size_t>(sh.n * sh.k)), amax(static_cast<size_t>(sh.k));
    for (auto& v : w) v = nd(rng);
    std::uniform_real_distribution<float> ud(0.1f, 30.0f);
    for (auto& v : amax) v = ud(rng);
    const quant::W8A8Linear lin(w.data(), sh.n, sh.k, amax.data());
    GpuW8A8Weights gw;
    upload_w8a8_weights({&lin.weights()}, gw, st);
    for (int64_t m : {1, 5, 64, 300}) {
      SCOPED_TRACE("n=" + std::to_string(sh.n) + " k=" + std::to_string(sh.k) + " m=" + std::to_string(m));
      const auto x = random_acts(m, sh.k, rng);
      std::vector<float> yc(static_cast<size_t>(m * sh.n));
      lin.forward(x.data(), m, yc.data());
      DeviceBuffer<uint16_t> dx;
      dx.upload(to_fp16(x), st);
      DeviceBuffer<int8_t> q(static_cast<size_t>(m * sh.k));
      DeviceBuffer<float> sx(static_cast<size_t>(m)), y32(static_cast<size_t>(m * sh.n));
      DeviceBuffer<uint16_t> y16(static_cast<size_t>(m * sh.n));
      DeviceBuffer<int32_t> acc(static_cast<size_t>(m * sh.n));
      FusedOut o;
      o.i8 = q.data();
      o.i8_scale = sx.data();
      o.smooth = gw.smooth.data();
      reorder_quant(dx.data(), ActDtype::F16, m, sh.k, o, st);
      y32.fill_bytes(0xFF, st);
      y16.fill_bytes(0xFF, st);
      w8a8_gemm(blas, q.data(), sx.data(), m, gw, acc.data(), W8A8Out{nullptr, y32.data(), false}, st);
      w8a8_gemm(blas, q.data(), sx.data(), m, gw, acc.data(), W8A8Out{y16.data(), nullptr, false}, st);
      const auto g32 = y32.download(st);
      const auto g16 = y16.download(st);
      EXPECT_EQ(std::memcmp(g32.data(), yc.data(), yc.size() * 4), 0) << "fp32 output not bit-exact";
      int64_t bad16 = 0;
      for (size_t i = 0; i < yc.size(); ++i) bad16 += g16[i] != float_to_fp16(yc[i]);
      EXPECT_EQ(bad16, 0);
      // accumulate: residual + y
      std::vector<float> res(yc.size());
      for (auto& v : res) v = nd(rng);
      y32.upload(res, st);
      w8a8_gemm(blas, q.data(), sx.data(), m, gw, acc.data(), W8A8Out{nullptr, y32.data(), true}, st);
      const auto ga = y32.download(st);
      int64_t bada = 0;
      for (size_t i = 0; i < yc.size(); ++i) bada += ga[i] != res[i] + yc[i];
      EXPECT_EQ(bada, 0);
    }
  }
}

}  // namespace
