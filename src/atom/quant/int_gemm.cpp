#include "atom/quant/int_gemm.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "atom/core/error.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace atom::quant {

// ---------------------------------------------------------------- ISA selection

const char* int_isa_name(IntIsa isa) {
  switch (isa) {
    case IntIsa::Auto: return "auto";
    case IntIsa::Scalar: return "scalar";
    case IntIsa::Avx2: return "avx2";
    case IntIsa::Avx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool int_isa_supported(IntIsa isa) {
  switch (isa) {
    case IntIsa::Auto:
    case IntIsa::Scalar: return true;
    case IntIsa::Avx2:
#if defined(__AVX2__)
      return true;  // the library is compiled for x86-64-v3: AVX2 is the baseline
#else
      return false;
#endif
    case IntIsa::Avx512Vnni: return detail::cpu_has_avx512vnni();
  }
  return false;
}

IntIsa best_int_isa() {
  static const IntIsa best = [] {
    IntIsa b = int_isa_supported(IntIsa::Avx512Vnni) ? IntIsa::Avx512Vnni
               : int_isa_supported(IntIsa::Avx2)      ? IntIsa::Avx2
                                                      : IntIsa::Scalar;
    if (const char* env = std::getenv("ATOM_INT_ISA")) {
      const std::string e = env;
      if (e == "scalar") b = IntIsa::Scalar;
      else if (e == "avx2" && b != IntIsa::Scalar) b = IntIsa::Avx2;
    }
    return b;
  }();
  return best;
}

IntIsa resolve_int_isa(IntIsa isa) {
  if (isa == IntIsa::Auto) return best_int_isa();
  ATOM_CHECK(int_isa_supported(isa), "integer GEMM: this CPU does not support the {} kernel", int_isa_name(isa));
  return isa;
}

// ---------------------------------------------------------------- kernels

namespace detail {

#if defined(__AVX2__)
namespace {
inline int32_t load32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
}  // namespace

// MR=4 rows × 1 panel (16 columns = two ymm of 8 columns × 4 channels).
void group_dot_avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t nq, bool narrow, int32_t* acc) {
  constexpr int MR = kAvx2Rows;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i s[MR][2];
  for (int r = 0; r < MR; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
  if (narrow) {
    // (qa+8) in 0..15 times qw in -8..7: each int16 lane gains at most 2·15·8 = 240 per quad, so
    // 128 quads (512 channels) stay below 30720 < 32767 before widening to int32.
    for (int64_t q0 = 0; q0 < nq; q0 += 128) {
      const int64_t q1 = std::min(nq, q0 + 128);
      __m256i h[MR][2];
      for (int r = 0; r < MR; ++r) h[r][0] = h[r][1] = _mm256_setzero_si256();
      for (int64_t q = q0; q < q1; ++q) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64 + 32));
        for (int r = 0; r < MR; ++r) {
          const __m256i av = _mm256_set1_epi32(load32(a + r * lda + q * 4));
          h[r][0] = _mm256_add_epi16(h[r][0], _mm256_maddubs_epi16(av, w0));
          h[r][1] = _mm256_add_epi16(h[r][1], _mm256_maddubs_epi16(av, w1));
        }
      }
      for (int r = 0; r < MR; ++r) {
        s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(h[r][0], ones));
        s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(h[r][1], ones));
      }
    }
  } else {
    // Sign trick: |qa| (u8) · (qw·sign(qa)) (s8) = qa·qw; a pair is at most 2·128·127 = 32512, so
    // vpmaddubsw never saturates, and vpmaddwd widens every quad.
    for (int64_t q = 0; q < nq; ++q) {
      const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64));
      const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + q * 64 + 32));
      for (int r = 0; r < MR; ++r) {
        const __m256i av = _mm256_set1_epi32(load32(a + r * lda + q * 4));
        const __m256i aa = _mm256_abs_epi8(av);
        s[r][0] = _mm256_add_epi32(s[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(w0, av)), ones));
        s[r][1] = _mm256_add_epi32(s[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(w1, av)), ones));
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * 16), s[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + r * 16 + 8), s[r][1]);
  }
}
#else
void group_dot_avx2(const uint8_t*, int64_t, const int8_t*, int64_t, bool, int32_t*) {
  fail("integer GEMM: AVX2 kernel not compiled in");
}
#endif

}  // namespace detail

namespace {

constexpr int kScalarRows = 4, kScalarPanels = 1;

// The portable kernel: signed activations, plain int32 multiply-accumulate.
void group_dot_scalar(const uint8_t* a, int64_t lda, const int8_t* w, int64_t nq, int32_t* acc) {
  for (int r = 0; r < kScalarRows; ++r) {
    const int8_t* ar = reinterpret_cast<const int8_t*>(a + r * lda);
    int32_t s[16] = {};
    for (int64_t q = 0; q < nq; ++q)
      for (int c = 0; c < 16; ++c)
        for (int j = 0; j < 4; ++j) s[c] += int32_t(ar[q * 4 + j]) * int32_t(w[q * 64 + c * 4 + j]);
    std::copy(s, s + 16, acc + r * 16);
  }
}

int64_t round_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

// Encoded activation byte and the matching correction offset (see int_gemm.h, detail::).
struct Encoding {
  int offset4, offset8;  // added to qa in INT4 / INT8 groups (then o·Σqw is subtracted)
};
Encoding encoding_for(IntIsa isa) {
  switch (isa) {
    case IntIsa::Avx2: return {8, 0};
    case IntIsa::Avx512Vnni: return {8, 128};
    default: return {0, 0};
  }
}

}  // namespace

// ---------------------------------------------------------------- weights

IntGemmWeights::IntGemmWeights(const int8_t* qw, int64_t n, int64_t k, std::vector<IntGroup> groups,
                               const float* w_scale)
    : n_(n), k_(k), groups_(std::move(groups)) {
  ATOM_CHECK(n > 0 && k > 0, "integer GEMM: empty weight {}x{}", n, k);
  int64_t next = 0, q = 0;
  for (const IntGroup& g : groups_) {
    ATOM_CHECK(g.k0 == next && g.len > 0, "integer GEMM: groups must tile [0, {}) in order", k);
    ATOM_CHECK(g.bits == 4 || g.bits == 8, "integer GEMM: group bits must be 4 or 8, got {}", g.bits);
    // Σ(qa+128)·qw must fit int32 in the VNNI kernel: 65536·255·127 < 2^31.
    ATOM_CHECK(g.len <= 65536, "integer GEMM: group of {} channels is too long (max 65536)", g.len);
    const int64_t nq = (g.len + 3) / 4;
    pgroups_.push_back({g.k0, g.len, q, nq, g.bits});
    q += nq;
    next += g.len;
  }
  ATOM_CHECK(next == k, "integer GEMM: groups cover {} of {} channels", next, k);
  quads_ = q;
  n_pad_ = round_up(n, kNAlign);
  const int64_t G = int64_t(groups_.size());
  panels_.assign(size_t(n_pad_ * quads_ * 4), 0);
  wsum_.assign(size_t(G * n_pad_), 0);
  scale_.assign(size_t(G * n_pad_), 0.0f);
  for (int64_t row = 0; row < n; ++row) {
    const int64_t p = row / kPanel, c = row % kPanel;
    int8_t* panel = panels_.data() + p * quads_ * 64;
    for (int64_t gi = 0; gi < G; ++gi) {
      const PaddedGroup& g = pgroups_[size_t(gi)];
      const int lim = g.bits == 4 ? 8 : 127;
      int32_t sum = 0;
      for (int64_t i = 0; i < g.len; ++i) {
        const int8_t v = qw[row * k + g.k0 + i];
        ATOM_CHECK(v >= -lim && v <= (g.bits == 4 ? 7 : 127), "integer GEMM: weight {} out of the INT{} range at [{}, {}]",
                   int(v), g.bits, row, g.k0 + i);
        const int64_t qq = g.q0 + i / 4, j = i % 4;
        panel[qq * 64 + c * 4 + j] = v;
        sum += v;
      }
      wsum_[size_t(gi * n_pad_ + row)] = sum;
      scale_[size_t(gi * n_pad_ + row)] = w_scale[row * G + gi];
    }
  }
}

// ---------------------------------------------------------------- GEMM

void IntGemmWeights::gemm(const int8_t* qa, int64_t lda_qa, const float* a_scale, int64_t m, float* y,
                          IntIsa isa, int32_t* psums) const {
  isa = resolve_int_isa(isa);
  ATOM_CHECK(lda_qa >= k_, "integer GEMM: activation row stride {} < K = {}", lda_qa, k_);
  if (m <= 0) return;
  const int MR = isa == IntIsa::Avx512Vnni ? detail::kVnniRows : isa == IntIsa::Avx2 ? detail::kAvx2Rows : kScalarRows;
  const int NP = isa == IntIsa::Avx512Vnni ? detail::kVnniPanels : isa == IntIsa::Avx2 ? detail::kAvx2Panels : kScalarPanels;
  const int W = NP * kPanel;  // tile width in columns
  const int64_t G = int64_t(groups_.size());
  const int64_t m_pad = round_up(m, MR);
  const int64_t lda = quads_ * 4;
  const Encoding enc = encoding_for(isa);

  // Encode activations once: padded rows/channels hold the encoding of 0 (they meet zero weights or
  // are discarded).
  std::vector<uint8_t> A(size_t(m_pad * lda));
  // Small problems (decode) run on the calling thread: a parallel region costs more than they do.
  const bool par = m_pad * n_pad_ * lda >= (int64_t(1) << 22);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t r = 0; r < m_pad; ++r) {
    uint8_t* dst = A.data() + r * lda;
    for (const PaddedGroup& g : pgroups_) {
      const int o = g.bits == 4 ? enc.offset4 : enc.offset8;
      const int8_t* src = qa + r * lda_qa + g.k0;
      const int64_t valid = r < m ? g.len : 0;
      for (int64_t i = 0; i < valid; ++i) dst[g.q0 * 4 + i] = uint8_t(int(src[i]) + o);
      for (int64_t i = valid; i < g.nq * 4; ++i) dst[g.q0 * 4 + i] = uint8_t(o);
    }
  }

  // Tiles: 64 rows × 128 columns per task; inside, MR rows stay in L1 while the task's weight
  // panels (128 × K bytes) stream from L2.
  const int64_t n_panels = n_pad_ / kPanel;
  const int64_t rows_per_task = 64, panels_per_task = 8;
  const int64_t row_tasks = (m_pad + rows_per_task - 1) / rows_per_task;
  const int64_t col_tasks = (n_panels + panels_per_task - 1) / panels_per_task;
  const int64_t panel_stride = quads_ * 64;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (par)
  for (int64_t rt = 0; rt < row_tasks; ++rt)
    for (int64_t ct = 0; ct < col_tasks; ++ct) {
      alignas(64) int32_t acc[detail::kVnniRows * detail::kVnniPanels * kPanel];
      alignas(64) float yacc[detail::kVnniRows * detail::kVnniPanels * kPanel];
      const int64_t r_end = std::min(m_pad, (rt + 1) * rows_per_task);
      const int64_t p_end = std::min(n_panels, (ct + 1) * panels_per_task);
      for (int64_t r0 = rt * rows_per_task; r0 < r_end; r0 += MR)
        for (int64_t p = ct * panels_per_task; p < p_end; p += NP) {
          std::fill(yacc, yacc + MR * W, 0.0f);
          const int rows = int(std::min<int64_t>(MR, m - r0));  // real rows in this tile (may be <= 0)
          for (int64_t gi = 0; gi < G; ++gi) {
            const PaddedGroup& g = pgroups_[size_t(gi)];
            const uint8_t* a = A.data() + r0 * lda + g.q0 * 4;
            const int8_t* w = panels_.data() + p * panel_stride + g.q0 * 64;
            switch (isa) {
              case IntIsa::Avx512Vnni: detail::group_dot_avx512vnni(a, lda, w, panel_stride, g.nq, acc); break;
              case IntIsa::Avx2: detail::group_dot_avx2(a, lda, w, g.nq, g.bits == 4, acc); break;
              default: group_dot_scalar(a, lda, w, g.nq, acc); break;
            }
            // Promotion: P = acc − o·Σqw (exact int32), then y += fp32(s_a·s_w)·fp32(P).
            const int32_t o = g.bits == 4 ? enc.offset4 : enc.offset8;
            const float* sw = scale_.data() + gi * n_pad_ + p * kPanel;
            const int32_t* ws = wsum_.data() + gi * n_pad_ + p * kPanel;
            for (int r = 0; r < rows; ++r) {
              const float sa = a_scale[(r0 + r) * G + gi];
              int32_t* ar = acc + r * W;
              float* yr = yacc + r * W;
              for (int c = 0; c < W; ++c) {
                ar[c] -= o * ws[c];
                const float sp = sa * sw[c];
                yr[c] += sp * float(ar[c]);
              }
              if (psums)
                for (int c = 0; c < W && p * kPanel + c < n_; ++c)
                  psums[((r0 + r) * n_ + p * kPanel + c) * G + gi] = ar[c];
            }
          }
          const int64_t cols = std::min<int64_t>(W, n_ - p * kPanel);
          for (int r = 0; r < rows; ++r)
            if (cols > 0) std::copy(yacc + r * W, yacc + r * W + cols, y + (r0 + r) * n_ + p * kPanel);
        }
    }
}

}  // namespace atom::quant
