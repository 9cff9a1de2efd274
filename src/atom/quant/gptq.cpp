#include "atom/quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "atom/core/error.h"
#include "atom/quant/int4.h"
#include "atom/quant/quantize.h"

namespace atom::quant {

std::vector<float> permute_columns(const float* w, int64_t n, int64_t k, const std::vector<int32_t>& perm) {
  ATOM_CHECK(int64_t(perm.size()) == k, "permute_columns: perm has {} entries for {} columns", perm.size(), k);
  std::vector<float> out(size_t(n * k));
#pragma omp parallel for schedule(static) if (n * k > (1 << 20))
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) out[size_t(r * k + j)] = w[r * k + perm[size_t(j)]];
  return out;
}

std::vector<float> dequantize_reordered(const AtomWeights& q) {
  const std::vector<float> orig = q.dequantize();
  return permute_columns(orig.data(), q.out_features, q.in_features, q.perm);
}

namespace {

// a <- U with a⁻¹ = UᵀU (U upper, lower triangle zeroed): GPTQ's cholesky(cholesky_inverse(cholesky(H)),
// upper=True). Returns false if `a` is not positive definite.
bool cholesky_inverse_upper(std::vector<double>& a, int64_t k) {
  const int kk = int(k);
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', kk, a.data(), kk) != 0) return false;
  if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', kk, a.data(), kk) != 0) return false;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j) a[size_t(i * k + j)] = a[size_t(j * k + i)];
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', kk, a.data(), kk) != 0) return false;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < i; ++j) a[size_t(i * k + j)] = 0.0;
  return true;
}

}  // namespace

namespace gptq_detail {

PreparedHessian prepare(const float* w_r, int64_t n, int64_t k, const double* h_r, const GptqOptions& opt) {
  ATOM_CHECK(n > 0, "GPTQ: empty weight");
  ATOM_CHECK(opt.block > 0 && opt.damp >= 0.0, "GPTQ: bad options (block {}, damp {})", opt.block, opt.damp);
  for (int64_t i = 0; i < n * k; ++i) ATOM_CHECK(std::isfinite(w_r[i]), "GPTQ: non-finite weight at {}", i);
  PreparedHessian p;
  p.h.assign(h_r, h_r + k * k);
  for (double v : p.h) ATOM_CHECK(std::isfinite(v), "GPTQ: non-finite Hessian entry");
  p.dead.assign(size_t(k), 0);
  for (int64_t j = 0; j < k; ++j)
    if (p.h[size_t(j * k + j)] == 0.0) {  // a channel calibration never saw: nothing to preserve
      p.h[size_t(j * k + j)] = 1.0;
      p.dead[size_t(j)] = 1;
      ++p.dead_columns;
    }
  for (int64_t j = 0; j < k; ++j) p.mean_diag += p.h[size_t(j * k + j)];
  p.mean_diag /= double(k);
  return p;
}

double damped_factor(const GptqOptions& opt, double mean_diag, const std::function<bool(double)>& try_factor) {
  double damp = opt.damp * mean_diag;
  for (int attempt = 0;; ++attempt) {
    if (try_factor(damp)) return damp;
    ATOM_CHECK(attempt < 6, "GPTQ: the Hessian is not positive definite even with damping {}", damp);
    damp = damp > 0 ? damp * 10.0 : 1e-6 * std::max(mean_diag, 1e-12);
  }
}

std::vector<std::pair<int64_t, int64_t>> column_blocks(const AtomLayout& L, int64_t block) {
  std::vector<int64_t> cuts;
  for (int64_t g = 0; g < L.n_groups; ++g) cuts.push_back(L.group_begin(g));
  if (L.n_outlier > 0) cuts.push_back(L.k_normal);
  cuts.push_back(L.k);
  std::vector<std::pair<int64_t, int64_t>> blocks;
  for (size_t c = 0; c + 1 < cuts.size(); ++c)
    for (int64_t b = cuts[c]; b < cuts[c + 1]; b += block) blocks.push_back({b, std::min(cuts[c + 1], b + block)});
  return blocks;
}

AtomWeights assemble(int64_t n, int64_t k, const AtomConfig& cfg, std::vector<int32_t> perm, const std::vector<int8_t>& qn,
                     std::vector<float> scales, std::vector<int8_t> qo, std::vector<float> so, std::vector<float> fo) {
  const AtomLayout L(k, cfg);
  AtomWeights out;
  out.out_features = n;
  out.in_features = k;
  out.config = cfg;
  out.perm = std::move(perm);
  const int64_t rb = int4_bytes(L.k_normal);
  out.w_int4.resize(size_t(n * rb));
  for (int64_t r = 0; r < n; ++r) pack_int4(qn.data() + r * L.k_normal, L.k_normal, out.w_int4.data() + r * rb);
  out.w_scale = std::move(scales);
  out.w_outlier = std::move(qo);
  out.w_outlier_scale = std::move(so);
  out.w_outlier_fp16 = std::move(fo);
  out.validate();
  return out;
}

}  // namespace gptq_detail

GptqResult gptq_quantize_atom(const float* w_r, int64_t n, int64_t k, const double* h_r, std::vector<int32_t> perm,
                              const AtomConfig& cfg, const GptqOptions& opt) {
  const AtomLayout L(k, cfg);
  gptq_detail::PreparedHessian ph = gptq_detail::prepare(w_r, n, k, h_r, opt);
  const bool o8 = cfg.outlier_bits == 8;
  GptqResult res;
  res.dead_columns = ph.dead_columns;
  std::vector<double> W(size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < k; ++j) W[size_t(r * k + j)] = ph.dead[size_t(j)] ? 0.0 : double(w_r[r * k + j]);

  // Hinv = chol(H⁻¹) upper; if the damped H is still not positive definite, damp harder.
  std::vector<double> U;
  res.damp_used = gptq_detail::damped_factor(opt, ph.mean_diag, [&](double damp) {
    U = ph.h;
    for (int64_t j = 0; j < k; ++j) U[size_t(j * k + j)] += damp;
    return cholesky_inverse_upper(U, k);
  });
  const auto blocks = gptq_detail::column_blocks(L, opt.block);

  // Outputs (reordered order).
  std::vector<int8_t> qn(size_t(n * L.k_normal));
  std::vector<float> scales(size_t(n * L.n_groups));
  std::vector<int8_t> qo(size_t(L.int8_outliers ? n * L.n_outlier : 0));
  std::vector<float> so(size_t(L.int8_outliers ? n : 0));
  std::vector<float> fo(size_t(L.fp16_outliers ? n * L.n_outlier : 0));
  std::vector<double> row_loss(size_t(n), 0.0);

  std::vector<double> Err;
  for (const auto& [i1, i2] : blocks) {
    const int64_t bw = i2 - i1;
    Err.assign(size_t(n * bw), 0.0);
    // Rows are independent given U: each quantizes its columns with its own scales.
#pragma omp parallel for schedule(static) if (n * bw * bw >= (int64_t(1) << 18))
    for (int64_t r = 0; r < n; ++r) {
      double* w = W.data() + r * k;
      for (int64_t i = i1; i < i2; ++i) {
        double wq;  // the value column i is rounded to
        if (i < L.k_normal) {
          const int64_t g = i / L.group;
          if (i == L.group_begin(g)) {  // group start: scale from the updated group
            float amax = 0.0f;
            for (int64_t j = i; j < i + L.group_size(g); ++j) amax = std::max(amax, std::fabs(float(w[j])));
            scales[size_t(r * L.n_groups + g)] = sym_scale(amax, cfg.w_clip, 4);
          }
          const float s = scales[size_t(r * L.n_groups + g)];
          const int8_t q = sym_quant(float(w[i]), s, 4);
          qn[size_t(r * L.k_normal + i)] = q;
          wq = double(q) * double(s);
        } else if (o8) {
          const int64_t j0 = i - L.k_normal;
          if (j0 == 0) {  // outlier start: per-output-channel scale from the updated outlier block
            float amax = 0.0f;
            for (int64_t j = L.k_normal; j < k; ++j) amax = std::max(amax, std::fabs(float(w[j])));
            so[size_t(r)] = sym_scale(amax, cfg.w_outlier_clip, 8);
          }
          const int8_t q = sym_quant(float(w[i]), so[size_t(r)], 8);
          qo[size_t(r * L.n_outlier + j0)] = q;
          wq = double(q) * double(so[size_t(r)]);
        } else {
          const float f = fp16_round(float(w[i]));
          fo[size_t(r * L.n_outlier + i - L.k_normal)] = f;
          wq = double(f);
        }
        const double* u = U.data() + i * k;
        const double d = u[i];
        const double err = (w[i] - wq) / d;
        row_loss[size_t(r)] += (w[i] - wq) * (w[i] - wq) / (d * d) / 2.0;
        for (int64_t j = i + 1; j < i2; ++j) w[j] -= err * u[j];  // feedback inside the block
        w[i] = wq;
        Err[size_t(r * bw + (i - i1))] = err;
      }
    }
    // Lazy batch update of every later column: W[:, i2:] -= Err · U[i1:i2, i2:].
    if (i2 < k)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(k - i2), int(bw), -1.0, Err.data(), int(bw),
                  U.data() + i1 * k + i2, int(k), 1.0, W.data() + i2, int(k));
  }
  for (double l : row_loss) res.loss += l;

  res.weights = gptq_detail::assemble(n, k, cfg, std::move(perm), qn, std::move(scales), std::move(qo), std::move(so),
                                      std::move(fo));
  return res;
}

double weight_error_proxy(const float* w_r, const AtomWeights& q, const double* h_r) {
  const int64_t n = q.out_features, k = q.in_features;
  const std::vector<float> deq = dequantize_reordered(q);
  std::vector<double> d(size_t(n * k)), dh(size_t(n * k));
  for (int64_t i = 0; i < n * k; ++i) d[size_t(i)] = double(w_r[i]) - double(deq[size_t(i)]);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(k), int(k), 1.0, d.data(), int(k), h_r, int(k),
              0.0, dh.data(), int(k));
  double e = 0;
  for (int64_t i = 0; i < n * k; ++i) e += d[size_t(i)] * dh[size_t(i)];
  return e;
}

ClipSearchResult search_weight_clip(const float* w_r, int64_t n, int64_t k, const double* h_r,
                                    const std::vector<int32_t>& perm, const AtomConfig& cfg, std::vector<float> grid) {
  ATOM_CHECK(!grid.empty(), "clip search: empty grid");
  ClipSearchResult res;
  res.grid = std::move(grid);
  double best = INFINITY;
  for (float c : res.grid) {
    AtomConfig trial = cfg;
    trial.w_clip = c;
    const double e = weight_error_proxy(w_r, atom_quantize_rtn_reordered(w_r, n, k, perm, trial), h_r);
    res.error.push_back(e);
    if (e < best) {
      best = e;
      res.best_clip = c;
    }
  }
  return res;
}

}  // namespace atom::quant
