#include "atom/quant/calibrate.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "atom/core/error.h"

namespace atom::quant {

InputKind input_kind(LinearSlot s) {
  switch (s) {
    case LinearSlot::Q: case LinearSlot::K: case LinearSlot::V: return InputKind::QKV;
    case LinearSlot::O: return InputKind::O;
    case LinearSlot::Gate: case LinearSlot::Up: return InputKind::GateUp;
    case LinearSlot::Down: return InputKind::Down;
  }
  return InputKind::QKV;
}

const char* input_kind_name(InputKind k) {
  static const char* names[] = {"qkv", "o", "gate_up", "down"};
  return names[int(k)];
}

std::vector<std::vector<int32_t>> sample_windows(const std::vector<int32_t>& tokens, int n_samples, int seqlen,
                                                 uint64_t seed) {
  ATOM_CHECK(n_samples > 0 && seqlen > 1, "calibration needs samples > 0 and seqlen > 1 (got {} x {})", n_samples,
             seqlen);
  // GPTQ's sampling: start in [0, n - seqlen - 1], so the text needs seqlen + 1 tokens.
  ATOM_CHECK(int64_t(tokens.size()) > seqlen,
             "calibration text has {} tokens; windows of {} need at least {} (lower --seqlen or use a longer file)",
             tokens.size(), seqlen, int64_t(seqlen) + 1);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> start(0, int64_t(tokens.size()) - seqlen - 1);
  std::vector<std::vector<int32_t>> w(static_cast<size_t>(n_samples));
  for (auto& win : w) {
    const int64_t s = start(rng);
    win.assign(tokens.begin() + s, tokens.begin() + s + seqlen);
  }
  return w;
}

InputStats::InputStats(int64_t channels, bool hessian)
    : k(channels), sumsq(size_t(channels)), absmax(size_t(channels)), with_hessian(hessian) {
  if (hessian) xtx.assign(size_t(k * k), 0.0);
}

void InputStats::add(const float* x, int64_t m) {
  ATOM_CHECK(!xtx_mirrored, "InputStats::add after hessian()");
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    for (int64_t j = 0; j < k; ++j) {
      sumsq[size_t(j)] += double(xi[j]) * xi[j];
      absmax[size_t(j)] = std::max(absmax[size_t(j)], std::abs(xi[j]));
    }
  }
  if (with_hessian) {
    // fp32 SYRK per chunk (BLAS speed), accumulated in double across chunks.
    std::vector<float> part(size_t(k * k));
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(k), int(m), 1.0f, x, int(k), 0.0f, part.data(), int(k));
    for (int64_t a = 0; a < k; ++a)
      for (int64_t b = a; b < k; ++b) xtx[size_t(a * k + b)] += part[size_t(a * k + b)];
  }
  rows += m;
}

std::vector<double> InputStats::hessian(const std::vector<int32_t>& perm) {
  ATOM_CHECK(with_hessian, "hessian requested but not collected");
  ATOM_CHECK(int64_t(perm.size()) == k, "hessian: permutation has {} entries for {} channels", perm.size(), k);
  if (!xtx_mirrored) {  // blocked transpose of the upper triangle into the lower one
    constexpr int64_t B = 64;
#pragma omp parallel for schedule(dynamic, 1) if (k >= 512)
    for (int64_t a0 = 0; a0 < k; a0 += B)
      for (int64_t b0 = a0; b0 < k; b0 += B)
        for (int64_t a = a0; a < std::min(k, a0 + B); ++a)
          for (int64_t b = std::max(a + 1, b0); b < std::min(k, b0 + B); ++b) xtx[size_t(b * k + a)] = xtx[size_t(a * k + b)];
    xtx_mirrored = true;
  }
  const double scale = 2.0 / double(std::max<int64_t>(rows, 1));
  std::vector<double> h(size_t(k * k));
#pragma omp parallel for schedule(static) if (k >= 512)
  for (int64_t i = 0; i < k; ++i) {
    const double* row = &xtx[size_t(perm[size_t(i)] * k)];
    double* out = &h[size_t(i * k)];
    for (int64_t j = 0; j < k; ++j) out[j] = scale * row[perm[size_t(j)]];
  }
  return h;
}

std::vector<int32_t> reorder_by_magnitude(const std::vector<double>& sumsq) {
  std::vector<int32_t> perm(sumsq.size());
  std::iota(perm.begin(), perm.end(), 0);
  // Stable: ties keep channel order, so the index is deterministic.
  std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) { return sumsq[size_t(a)] < sumsq[size_t(b)]; });
  return perm;
}

}  // namespace atom::quant
