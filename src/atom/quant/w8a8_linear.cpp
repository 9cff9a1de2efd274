#include "atom/quant/w8a8_linear.h"

#include <algorithm>
#include <cmath>

#include "atom/core/error.h"
#include "atom/quant/quantize.h"

namespace atom::quant {

void W8A8Weights::validate() const {
  ATOM_CHECK(out_features > 0 && in_features > 0, "W8A8 weights: bad shape {}x{}", out_features, in_features);
  ATOM_CHECK(int64_t(w_int8.size()) == out_features * in_features, "W8A8 weights: w_int8 has {} values, expected {}x{}",
             w_int8.size(), out_features, in_features);
  ATOM_CHECK(int64_t(w_scale.size()) == out_features, "W8A8 weights: w_scale has {} values, expected {}", w_scale.size(),
             out_features);
  ATOM_CHECK(smooth.empty() || int64_t(smooth.size()) == in_features, "W8A8 weights: smooth has {} values, expected {}",
             smooth.size(), in_features);
  for (float s : smooth) ATOM_CHECK(std::isfinite(s) && s > 0.0f, "W8A8 weights: smoothing factor {}", s);
  for (float s : w_scale) ATOM_CHECK(std::isfinite(s) && s >= 0.0f, "W8A8 weights: scale {}", s);
  for (int8_t q : w_int8) ATOM_CHECK(q != -128, "W8A8 weights: INT8 weight -128 (range is ±127)");
}

void weight_column_absmax(const float* w, int64_t n, int64_t k, float* out) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) out[j] = std::max(out[j], std::fabs(w[r * k + j]));
}

std::vector<float> smoothquant_factors(const float* act_absmax, const float* w_col_absmax, int64_t k, float alpha) {
  ATOM_CHECK(alpha >= 0.0f && alpha <= 1.0f, "SmoothQuant: alpha must be in [0, 1], got {}", alpha);
  std::vector<float> s(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) {
    const double a = std::max(double(act_absmax[j]), 1e-5), w = std::max(double(w_col_absmax[j]), 1e-5);
    const double v = std::pow(a, double(alpha)) / std::pow(w, 1.0 - double(alpha));
    s[size_t(j)] = std::isfinite(v) && v > 0 ? float(v) : 1.0f;
  }
  return s;
}

W8A8Weights w8a8_quantize(const float* w, int64_t n, int64_t k, std::vector<float> smooth) {
  W8A8Weights out;
  out.out_features = n;
  out.in_features = k;
  out.smooth = std::move(smooth);
  ATOM_CHECK(out.smooth.empty() || int64_t(out.smooth.size()) == k, "W8A8: smooth has {} values, expected {}",
             out.smooth.size(), k);
  out.w_int8.resize(size_t(n * k));
  out.w_scale.resize(size_t(n));
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < k; ++j) {
      row[size_t(j)] = w[r * k + j] * (out.smooth.empty() ? 1.0f : out.smooth[size_t(j)]);
      ATOM_CHECK(std::isfinite(row[size_t(j)]), "W8A8: non-finite weight at [{}, {}]", r, j);
    }
    out.w_scale[size_t(r)] = quantize_sym_segment(row.data(), k, 8, 1.0f, out.w_int8.data() + r * k);
  }
  return out;
}

W8A8Linear::W8A8Linear(const float* w, int64_t out, int64_t in, const float* act_absmax, float alpha)
    : W8A8Linear([&] {
        std::vector<float> s;
        if (act_absmax) {
          std::vector<float> wmax(size_t(in), 0.0f);
          weight_column_absmax(w, out, in, wmax.data());
          s = smoothquant_factors(act_absmax, wmax.data(), in, alpha);
        }
        return w8a8_quantize(w, out, in, std::move(s));
      }()) {}

W8A8Linear::W8A8Linear(W8A8Weights weights) : Linear(weights.in_features, weights.out_features), w_(std::move(weights)) {
  w_.validate();
  gemm_ = IntGemmWeights(w_.w_int8.data(), w_.out_features, w_.in_features, {IntGroup{0, w_.in_features, 8}},
                         w_.w_scale.data());
}

void w8a8_quantize_activations(const float* x, int64_t m, int64_t k, const std::vector<float>& smooth, int8_t* q,
                               float* scales) {
#pragma omp parallel for schedule(static) if (m * k > (1 << 15))
  for (int64_t r = 0; r < m; ++r) {
    thread_local std::vector<float> buf;
    const float* xr = x + r * k;
    if (!smooth.empty()) {
      buf.resize(size_t(k));
      for (int64_t j = 0; j < k; ++j) buf[size_t(j)] = xr[j] / smooth[size_t(j)];
      xr = buf.data();
    }
    scales[r] = quantize_sym_segment(xr, k, 8, 1.0f, q + r * k);
  }
}

void W8A8Linear::forward(const float* x, int64_t m, float* y) const {
  const int64_t k = in_features();
  std::vector<int8_t> q(size_t(m * k));
  std::vector<float> s(static_cast<size_t>(m));
  w8a8_quantize_activations(x, m, k, w_.smooth, q.data(), s.data());
  gemm_.gemm(q.data(), k, s.data(), m, y, isa_);
}

void w8a8_linear_reference(const W8A8Weights& w, const float* x, int64_t m, std::vector<double>& y) {
  w.validate();
  const int64_t n = w.out_features, k = w.in_features;
  y.assign(size_t(m * n), 0.0);
  std::vector<float> xs(static_cast<size_t>(k));
  std::vector<int8_t> q(static_cast<size_t>(k));
  for (int64_t i = 0; i < m; ++i) {
    float amax = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      xs[size_t(j)] = w.smooth.empty() ? x[i * k + j] : x[i * k + j] / w.smooth[size_t(j)];
      amax = std::max(amax, std::fabs(xs[size_t(j)]));
    }
    const float sx = sym_scale(amax, 1.0f, 8);
    for (int64_t j = 0; j < k; ++j) q[size_t(j)] = sym_quant(xs[size_t(j)], sx, 8);
    for (int64_t c = 0; c < n; ++c) {
      int64_t p = 0;
      for (int64_t j = 0; j < k; ++j) p += int64_t(q[size_t(j)]) * int64_t(w.w_int8[size_t(c * k + j)]);
      y[size_t(i * n + c)] = double(sx * w.w_scale[size_t(c)]) * double(p);
    }
  }
}

}  // namespace atom::quant
