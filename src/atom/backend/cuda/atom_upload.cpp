// Host side of the GPU Atom linear: layout validation, INT4 repacking into the GPU (MMA) order,
// weight upload. Compiled by the host compiler (may use fmt through atom/core/error.h).
#include <cuda_fp16.h>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/fused_quant.h"
#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/int4.h"

namespace atom::cuda {

GpuAtomLayout make_gpu_layout(int64_t k, int64_t n_outlier, int64_t group) {
  ATOM_CHECK(k > 0 && n_outlier >= 0 && n_outlier < k, "GPU Atom layout: bad K={} / n_outlier={}", k, n_outlier);
  ATOM_CHECK(group == GpuAtomLayout::kGroup, "GPU Atom layout: only group 128 is implemented (got {})", group);
  ATOM_CHECK(n_outlier % 16 == 0, "GPU Atom layout: n_outlier must be a multiple of 16 (got {})", n_outlier);
  GpuAtomLayout L;
  L.k = k;
  L.n_outlier = n_outlier;
  L.k_normal = k - n_outlier;
  L.n_groups = (L.k_normal + GpuAtomLayout::kGroup - 1) / GpuAtomLayout::kGroup;
  return L;
}

std::vector<uint8_t> pack_int4_gpu(const int8_t* q, int64_t rows, const GpuAtomLayout& L) {
  const int64_t rb = L.q4_row_bytes();
  std::vector<uint8_t> out(size_t(rows * rb), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < L.k_normal; ++j) {
      const int64_t g = j / 128, e = j % 128, c = e / 32, p = e % 32;
      const int64_t half = p / 16, t = (p % 16) / 4, i = p % 4;  // nibble i of half `half` of word t
      const int64_t bit = half * 16 + i * 4;
      const int64_t byte = r * rb + g * 64 + c * 16 + t * 4 + bit / 8;
      out[size_t(byte)] |= uint8_t((uint8_t(q[r * L.k_normal + j]) & 0xF) << (bit % 8));
    }
  return out;
}

std::vector<int8_t> unpack_int4_gpu(const uint8_t* p, int64_t rows, const GpuAtomLayout& L) {
  const int64_t rb = L.q4_row_bytes(), kp = L.n_groups * 128;
  std::vector<int8_t> out(size_t(rows * kp));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < kp; ++j) {
      const int64_t g = j / 128, e = j % 128, c = e / 32, q = e % 32;
      const int64_t half = q / 16, t = (q % 16) / 4, i = q % 4;
      const int64_t bit = half * 16 + i * 4;
      const uint8_t b = p[r * rb + g * 64 + c * 16 + t * 4 + bit / 8];
      out[size_t(r * kp + j)] = quant::int4_sext(uint8_t(b >> (bit % 8)));
    }
  return out;
}

static std::vector<uint16_t> to_fp16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_fp16(v[i]);
  return h;
}

void upload_atom_weights(const quant::AtomWeights& w, GpuAtomWeights& out, cudaStream_t s) {
  const quant::AtomLayout QL = w.layout();
  ATOM_CHECK(w.config.a_bits == 4, "GPU Atom linear: a_bits must be 4");
  ATOM_CHECK(QL.n_outlier == 0 || QL.int8_outliers, "GPU Atom linear: outliers must be INT8 (outlier_bits 8)");
  ATOM_CHECK(QL.group == GpuAtomLayout::kGroup && QL.n_groups == (QL.k_normal + 127) / 128,
             "GPU Atom linear: only group 128 is implemented (layout group {})", QL.group);
  const GpuAtomLayout L = make_gpu_layout(w.in_features, QL.n_outlier, QL.group);
  const int64_t n = w.out_features;
  std::vector<int8_t> q(size_t(n * L.k_normal));
  const int64_t rb = quant::int4_bytes(L.k_normal);
  for (int64_t r = 0; r < n; ++r) quant::unpack_int4(w.w_int4.data() + r * rb, L.k_normal, q.data() + r * L.k_normal);
  out.n = n;
  out.k = w.in_features;
  out.L = L;
  out.a_clip = w.config.a_clip;
  out.a_outlier_clip = w.config.a_outlier_clip;
  upload_atom_perm(w.perm, out, s);
  out.q4.upload(pack_int4_gpu(q.data(), n, L), s);
  std::vector<uint16_t> scale = to_fp16_bits(w.w_scale);
  scale.resize(size_t(L.scale_elems(n)), 0);
  out.scale.upload(scale, s);
  if (L.n_outlier > 0) {
    out.q8.upload(w.w_outlier, s);
    out.oscale.upload(to_fp16_bits(w.w_outlier_scale), s);
  }
  ATOM_CUDA_CHECK(cudaStreamSynchronize(s));  // the host vectors above are temporaries
}

void upload_atom_perm(const std::vector<int32_t>& perm, GpuAtomWeights& w, cudaStream_t s) {
  w.perm.upload(perm, s);
  w.stage.upload(atom_stage_table(perm, w.L), s);
  ATOM_CUDA_CHECK(cudaStreamSynchronize(s));  // the staging table is a temporary
}

void GpuAtomActs::resize(int64_t rows, const GpuAtomLayout& L) {
  m = rows;
  q4.resize(size_t(rows * L.q4_row_bytes()));
  scale.resize(size_t(L.scale_elems(rows)));
  q8.resize(size_t(rows * L.n_outlier));
  oscale.resize(size_t(L.n_outlier > 0 ? rows : 0));
}

}  // namespace atom::cuda
