#include "atom/quant/atom_linear.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"
#include "atom/quant/int4.h"
#include "atom/quant/quantize.h"

namespace atom::quant {

// ---------------------------------------------------------------- layout and validation

AtomLayout::AtomLayout(int64_t k_, const AtomConfig& cfg) : k(k_), n_outlier(cfg.n_outlier) {
  ATOM_CHECK(k > 0, "Atom layout: K must be positive, got {}", k);
  ATOM_CHECK(n_outlier >= 0 && n_outlier < k, "Atom layout: n_outlier = {} must be in [0, K = {})", n_outlier, k);
  ATOM_CHECK(cfg.outlier_bits == 8 || cfg.outlier_bits == 16, "Atom config: outlier_bits must be 8 or 16, got {}",
             cfg.outlier_bits);
  ATOM_CHECK(cfg.a_bits == 4 || cfg.a_bits == 16, "Atom config: a_bits must be 4 or 16, got {}", cfg.a_bits);
  for (float c : {cfg.w_clip, cfg.a_clip, cfg.w_outlier_clip, cfg.a_outlier_clip})
    ATOM_CHECK(c > 0.0f && c <= 1.0f, "Atom config: clip ratios must be in (0, 1], got {}", c);
  k_normal = k - n_outlier;
  group = (cfg.group <= 0 || cfg.group >= k_normal) ? k_normal : cfg.group;
  n_groups = num_groups(k_normal, group);
  int8_outliers = n_outlier > 0 && cfg.outlier_bits == 8;
  fp16_outliers = n_outlier > 0 && cfg.outlier_bits == 16;
}

static bool is_permutation(const std::vector<int32_t>& p, int64_t k) {
  if (int64_t(p.size()) != k) return false;
  std::vector<char> seen(size_t(k), 0);
  for (int32_t v : p) {
    if (v < 0 || v >= k || seen[size_t(v)]) return false;
    seen[size_t(v)] = 1;
  }
  return true;
}

void AtomWeights::validate() const {
  ATOM_CHECK(out_features > 0 && in_features > 0, "Atom weights: bad shape {}x{}", out_features, in_features);
  const AtomLayout L = layout();
  const int64_t n = out_features;
  ATOM_CHECK(is_permutation(perm, in_features), "Atom weights: perm is not a permutation of 0..{}", in_features - 1);
  auto size_is = [](const auto& v, int64_t want, const char* what) {
    ATOM_CHECK(int64_t(v.size()) == want, "Atom weights: {} has {} entries, expected {}", what, v.size(), want);
  };
  size_is(w_int4, n * int4_bytes(L.k_normal), "w_int4");
  size_is(w_scale, n * L.n_groups, "w_scale");
  size_is(w_outlier, L.int8_outliers ? n * L.n_outlier : 0, "w_outlier");
  size_is(w_outlier_scale, L.int8_outliers ? n : 0, "w_outlier_scale");
  size_is(w_outlier_fp16, L.fp16_outliers ? n * L.n_outlier : 0, "w_outlier_fp16");
  auto finite_nonneg = [](const std::vector<float>& v, const char* what) {
    for (float s : v) ATOM_CHECK(std::isfinite(s) && s >= 0.0f, "Atom weights: {} holds {}", what, s);
  };
  finite_nonneg(w_scale, "w_scale");
  finite_nonneg(w_outlier_scale, "w_outlier_scale");
  for (int8_t q : w_outlier) ATOM_CHECK(q != -128, "Atom weights: INT8 outlier weight -128 (range is ±127)");
  for (float v : w_outlier_fp16) ATOM_CHECK(std::isfinite(v), "Atom weights: non-finite fp16 outlier weight");
}

std::vector<float> AtomWeights::dequantize() const {
  const AtomLayout L = layout();
  const int64_t n = out_features, k = in_features;
  std::vector<float> out(size_t(n * k));
#pragma omp parallel for schedule(static) if (n * k > (1 << 18))
  for (int64_t r = 0; r < n; ++r) {
    thread_local std::vector<int8_t> q;
    q.resize(size_t(L.k_normal));
    unpack_int4(w_int4.data() + r * int4_bytes(L.k_normal), L.k_normal, q.data());
    for (int64_t j = 0; j < L.k_normal; ++j)
      out[size_t(r * k + perm[size_t(j)])] = float(q[size_t(j)]) * w_scale[size_t(r * L.n_groups + j / L.group)];
    for (int64_t j = 0; j < L.n_outlier; ++j) {
      const float v = config.outlier_bits == 8 ? float(w_outlier[size_t(r * L.n_outlier + j)]) * w_outlier_scale[size_t(r)]
                                               : w_outlier_fp16[size_t(r * L.n_outlier + j)];
      out[size_t(r * k + perm[size_t(L.k_normal + j)])] = v;
    }
  }
  return out;
}

// ---------------------------------------------------------------- RTN

AtomWeights atom_quantize_rtn_reordered(const float* w_r, int64_t n, int64_t k, std::vector<int32_t> perm,
                                        const AtomConfig& cfg) {
  const AtomLayout L(k, cfg);
  ATOM_CHECK(is_permutation(perm, k), "Atom RTN: perm is not a permutation of 0..{}", k - 1);
  for (int64_t i = 0; i < n * k; ++i) ATOM_CHECK(std::isfinite(w_r[i]), "Atom RTN: non-finite weight at {}", i);
  AtomWeights w;
  w.out_features = n;
  w.in_features = k;
  w.config = cfg;
  w.perm = std::move(perm);
  const int64_t row_bytes = int4_bytes(L.k_normal);
  w.w_int4.resize(size_t(n * row_bytes));
  w.w_scale.resize(size_t(n * L.n_groups));
  w.w_outlier.resize(size_t(L.int8_outliers ? n * L.n_outlier : 0));
  w.w_outlier_scale.resize(size_t(L.int8_outliers ? n : 0));
  w.w_outlier_fp16.resize(size_t(L.fp16_outliers ? n * L.n_outlier : 0));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    std::vector<int8_t> q(size_t(L.k_normal));
    const float* row = w_r + r * k;
    quantize_sym_groups(row, L.k_normal, L.group, 4, cfg.w_clip, q.data(), w.w_scale.data() + r * L.n_groups);
    pack_int4(q.data(), L.k_normal, w.w_int4.data() + r * row_bytes);
    if (L.int8_outliers)
      w.w_outlier_scale[size_t(r)] = quantize_sym_segment(row + L.k_normal, L.n_outlier, 8, cfg.w_outlier_clip,
                                                          w.w_outlier.data() + r * L.n_outlier);
    else
      for (int64_t j = 0; j < L.n_outlier; ++j)
        w.w_outlier_fp16[size_t(r * L.n_outlier + j)] = fp16_round(row[L.k_normal + j]);
  }
  return w;
}

AtomWeights atom_quantize_rtn(const float* w, int64_t n, int64_t k, std::vector<int32_t> perm, const AtomConfig& cfg) {
  ATOM_CHECK(is_permutation(perm, k), "Atom RTN: perm is not a permutation of 0..{}", k - 1);
  std::vector<float> w_r(size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) w_r[size_t(r * k + j)] = w[r * k + perm[size_t(j)]];
  return atom_quantize_rtn_reordered(w_r.data(), n, k, std::move(perm), cfg);
}

// ---------------------------------------------------------------- activations

void atom_quantize_activations(const float* x, int64_t m, const std::vector<int32_t>& perm, const AtomLayout& L,
                               const AtomConfig& cfg, AtomActivations& act) {
  const int64_t k = L.k;
  const int64_t G = L.n_groups + (L.int8_outliers ? 1 : 0);
  act.m = m;
  act.q.resize(size_t(m * k));
  act.scale.resize(size_t(m * G));
  act.outlier_fp16.resize(size_t(L.fp16_outliers ? m * L.n_outlier : 0));
  act.x_fp32.clear();
  bool identity = true;
  for (int64_t j = 0; j < k && identity; ++j) identity = perm[size_t(j)] == j;
#pragma omp parallel for schedule(static) if (m * k > (1 << 15))
  for (int64_t r = 0; r < m; ++r) {
    thread_local std::vector<float> buf;
    const float* xr = x + r * k;
    if (!identity) {  // gather into reordered order (on the GPU: fused into the norm kernel)
      buf.resize(size_t(k));
      for (int64_t j = 0; j < k; ++j) buf[size_t(j)] = xr[perm[size_t(j)]];
      xr = buf.data();
    }
    int8_t* q = act.q.data() + r * k;
    float* s = act.scale.data() + r * G;
    quantize_sym_groups(xr, L.k_normal, L.group, 4, cfg.a_clip, q, s, Rounding::kReciprocal);
    if (L.int8_outliers) {
      s[L.n_groups] = quantize_sym_segment(xr + L.k_normal, L.n_outlier, 8, cfg.a_outlier_clip, q + L.k_normal,
                                           Rounding::kReciprocal);
    } else {
      std::fill(q + L.k_normal, q + k, int8_t(0));
      for (int64_t j = 0; j < L.n_outlier; ++j)
        act.outlier_fp16[size_t(r * L.n_outlier + j)] = fp16_round(xr[L.k_normal + j]);
    }
  }
}

// ---------------------------------------------------------------- AtomLinear

AtomLinear::AtomLinear(const float* w, int64_t out, int64_t in, std::vector<int32_t> perm, const AtomConfig& cfg)
    : AtomLinear(atom_quantize_rtn(w, out, in, std::move(perm), cfg)) {}

AtomLinear::AtomLinear(AtomWeights weights) : Linear(weights.in_features, weights.out_features), w_(std::move(weights)) {
  w_.validate();
  layout_ = w_.layout();
  build();
}

void AtomLinear::build() {
  const AtomLayout& L = layout_;
  const int64_t n = w_.out_features, k = w_.in_features;
  identity_perm_ = true;
  for (int64_t j = 0; j < k && identity_perm_; ++j) identity_perm_ = w_.perm[size_t(j)] == j;
  const bool o8 = L.int8_outliers;

  if (w_.config.a_bits == 16) {
    // Weight-only: multiply fp32 activations by the dequantized weight (reordered columns).
    w_dense_.resize(size_t(n * k));
    const std::vector<float> orig = w_.dequantize();
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j) w_dense_[size_t(r * k + j)] = orig[size_t(r * k + w_.perm[size_t(j)])];
    return;
  }
  // Unpack the INT4 weights once into an int8 working copy (the packed form stays the truth).
  const int64_t kq = o8 ? k : L.k_normal;  // channels the integer GEMM covers
  std::vector<int8_t> qw(size_t(n * kq));
  std::vector<IntGroup> groups;
  for (int64_t g = 0; g < L.n_groups; ++g) groups.push_back({L.group_begin(g), L.group_size(g), 4});
  if (o8) groups.push_back({L.k_normal, L.n_outlier, 8});
  const int64_t G = int64_t(groups.size());
  std::vector<float> sw(size_t(n * G));
  for (int64_t r = 0; r < n; ++r) {
    unpack_int4(w_.w_int4.data() + r * int4_bytes(L.k_normal), L.k_normal, qw.data() + r * kq);
    std::copy_n(w_.w_scale.data() + r * L.n_groups, L.n_groups, sw.data() + r * G);
    if (o8) {
      std::copy_n(w_.w_outlier.data() + r * L.n_outlier, L.n_outlier, qw.data() + r * kq + L.k_normal);
      sw[size_t(r * G + L.n_groups)] = w_.w_outlier_scale[size_t(r)];
    }
  }
  gemm_ = IntGemmWeights(qw.data(), n, kq, std::move(groups), sw.data());
  if (L.fp16_outliers) w_outlier_f_ = w_.w_outlier_fp16;
}

void AtomLinear::quantize_input(const float* x, int64_t m, AtomActivations& act) const {
  if (w_.config.a_bits == 16) {
    const int64_t k = in_features();
    act = AtomActivations{};
    act.m = m;
    act.x_fp32.resize(size_t(m * k));
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < k; ++j)
        act.x_fp32[size_t(r * k + j)] = identity_perm_ ? x[r * k + j] : x[r * k + w_.perm[size_t(j)]];
    return;
  }
  atom_quantize_activations(x, m, w_.perm, layout_, w_.config, act);
}

void AtomLinear::forward_quantized(const AtomActivations& act, float* y) const {
  const int64_t m = act.m, n = out_features(), k = in_features();
  if (m <= 0) return;
  if (w_.config.a_bits == 16) {
    ATOM_CHECK(int64_t(act.x_fp32.size()) == m * k, "AtomLinear: activations were not prepared for a_bits 16");
    cpu::gemm_nt(m, n, k, act.x_fp32.data(), k, w_dense_.data(), k, y, n);
    return;
  }
  ATOM_CHECK(int64_t(act.q.size()) == m * k, "AtomLinear: activations have {} values, expected {}x{}", act.q.size(), m, k);
  gemm_.gemm(act.q.data(), k, act.scale.data(), m, y, isa_);
  if (layout_.fp16_outliers)  // fp16 outliers, multiplied in fp32
    cpu::gemm_nt(m, n, layout_.n_outlier, act.outlier_fp16.data(), layout_.n_outlier, w_outlier_f_.data(),
                 layout_.n_outlier, y, n, 1.0f);
}

void AtomLinear::forward(const float* x, int64_t m, float* y) const {
  AtomActivations act;
  quantize_input(x, m, act);
  forward_quantized(act, y);
}

void AtomLinear::partial_sums(const AtomActivations& act, std::vector<int32_t>& psums) const {
  ATOM_CHECK(w_.config.a_bits == 4, "AtomLinear::partial_sums needs a_bits 4");
  const int64_t m = act.m, n = out_features();
  const int64_t G = int64_t(gemm_.groups().size());
  psums.assign(size_t(m * n * G), std::numeric_limits<int32_t>::min());  // poison: every entry is written
  std::vector<float> y(size_t(m * n));
  gemm_.gemm(act.q.data(), in_features(), act.scale.data(), m, y.data(), isa_, psums.data());
}

// ---------------------------------------------------------------- the literal reference

void atom_linear_reference(const AtomWeights& w, const float* x, int64_t m, std::vector<double>& y,
                           std::vector<int64_t>* psums) {
  w.validate();
  const AtomConfig& cfg = w.config;
  const AtomLayout L = w.layout();
  const int64_t n = w.out_features, k = w.in_features, kn = L.k_normal, no = L.n_outlier;
  const bool o8 = cfg.outlier_bits == 8, a4 = cfg.a_bits == 4;
  const int64_t G = L.n_groups + (o8 && no > 0 ? 1 : 0);
  y.assign(size_t(m * n), 0.0);
  if (psums) psums->assign(size_t(m * n * G), 0);

  // Weights, unpacked: qw [N, K_n] and the outlier tail as integers or fp16 values.
  std::vector<int8_t> qw(size_t(n * kn));
  for (int64_t r = 0; r < n; ++r) unpack_int4(w.w_int4.data() + r * int4_bytes(kn), kn, qw.data() + r * kn);

  std::vector<float> xr(static_cast<size_t>(k));
  std::vector<int8_t> qa(static_cast<size_t>(k));
  std::vector<float> sa(size_t(L.n_groups));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < k; ++j) xr[size_t(j)] = x[i * k + w.perm[size_t(j)]];
    float sao = 0.0f;
    if (a4) {  // scale = fp16(clip·max|x|/7), q = clamp(rne(x·fl(1/s)), -8, 7), per group
      for (int64_t g = 0; g < L.n_groups; ++g) {
        const int64_t b = L.group_begin(g), e = b + L.group_size(g);
        float amax = 0.0f;
        for (int64_t j = b; j < e; ++j) amax = std::max(amax, std::fabs(xr[size_t(j)]));
        sa[size_t(g)] = sym_scale(amax, cfg.a_clip, 4);
        const float r = sym_recip(sa[size_t(g)]);
        for (int64_t j = b; j < e; ++j) qa[size_t(j)] = sym_quant_recip(xr[size_t(j)], r, 4);
      }
      if (o8) {
        float amax = 0.0f;
        for (int64_t j = kn; j < k; ++j) amax = std::max(amax, std::fabs(xr[size_t(j)]));
        sao = sym_scale(amax, cfg.a_outlier_clip, 8);
        const float r = sym_recip(sao);
        for (int64_t j = kn; j < k; ++j) qa[size_t(j)] = sym_quant_recip(xr[size_t(j)], r, 8);
      }
    }
    for (int64_t c = 0; c < n; ++c) {
      double acc = 0.0;
      for (int64_t g = 0; g < L.n_groups; ++g) {
        const int64_t b = L.group_begin(g), e = b + L.group_size(g);
        const float sw = w.w_scale[size_t(c * L.n_groups + g)];
        if (a4) {
          int64_t p = 0;
          for (int64_t j = b; j < e; ++j) p += int64_t(qa[size_t(j)]) * int64_t(qw[size_t(c * kn + j)]);
          const float sprod = sa[size_t(g)] * sw;  // the fp32 product of two fp16 scales
          acc += double(sprod) * double(p);
          if (psums) (*psums)[size_t((i * n + c) * G + g)] = p;
        } else {
          for (int64_t j = b; j < e; ++j) acc += double(xr[size_t(j)]) * double(qw[size_t(c * kn + j)]) * double(sw);
        }
      }
      if (no > 0) {
        if (o8 && a4) {
          int64_t p = 0;
          for (int64_t j = 0; j < no; ++j) p += int64_t(qa[size_t(kn + j)]) * int64_t(w.w_outlier[size_t(c * no + j)]);
          const float sprod = sao * w.w_outlier_scale[size_t(c)];
          acc += double(sprod) * double(p);
          if (psums) (*psums)[size_t((i * n + c) * G + L.n_groups)] = p;
        } else {
          for (int64_t j = 0; j < no; ++j) {
            const double wv = o8 ? double(w.w_outlier[size_t(c * no + j)]) * double(w.w_outlier_scale[size_t(c)])
                                 : double(w.w_outlier_fp16[size_t(c * no + j)]);
            const double xv = a4 ? double(fp16_round(xr[size_t(kn + j)])) : double(xr[size_t(kn + j)]);
            acc += xv * wv;
          }
        }
      }
      y[size_t(i * n + c)] = acc;
    }
  }
}

}  // namespace atom::quant
