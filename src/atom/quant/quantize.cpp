#include "atom/quant/quantize.h"

#include <algorithm>

#include "atom/core/error.h"

#if defined(__AVX2__)
#include <immintrin.h>
#endif

namespace atom::quant {

namespace {

#if defined(__AVX2__)
// Vector forms of absmax() and sym_quant() for the bulk of a segment, bit-identical to the scalar
// ones: the same IEEE division, round-half-even (vroundps), and the same NaN behaviour (absmax skips
// NaN: maxps returns its second operand when either is NaN; a NaN value quantizes to 0).
int64_t absmax_avx2(const float* x, int64_t n, float& m) {
  const __m256 mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) acc = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + i), mask), acc);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc);
  for (float v : lanes) m = v > m ? v : m;
  return i;
}

// sym_quant (v = s: the division, then vroundps) or, kReciprocal, sym_quant_recip (v = r: fma(x, r, 1.5·2^23)
// rounds the exact product once, half to even; the sum's ulp is 1 for |x·r| < 2^22, and larger products keep
// their sign and clamp as the scalar rule does) for 8 values at a time.
template <Rounding R>
int64_t quantize_avx2(const float* x, int64_t n, float v, int bits, int8_t* q) {
  const __m256 vv = _mm256_set1_ps(v), shift = _mm256_set1_ps(12582912.0f);  // shift: kReciprocal's 1.5·2^23
  const __m256 lo = _mm256_set1_ps(float(sym_qmin(bits))), hi = _mm256_set1_ps(float(sym_qmax(bits)));
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 r;
    if constexpr (R == Rounding::kReciprocal) {  // instantiated only where there is an FMA (the caller)
      r = _mm256_sub_ps(_mm256_fmadd_ps(_mm256_loadu_ps(x + i), vv, shift), shift);
    } else {
      r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));  // NaN -> 0, as the scalar rules
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    const __m256i c = _mm256_cvtps_epi32(r);
    // 8 int32 -> 8 int8 (values already in range, so the saturating packs are exact)
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), _mm_packs_epi16(w, w));
  }
  return i;
}
#endif

}  // namespace

float quantize_sym_segment(const float* x, int64_t n, int bits, float clip, int8_t* q, Rounding rounding) {
  ATOM_CHECK(bits == 4 || bits == 8, "symmetric quantization: bits must be 4 or 8, got {}", bits);
  float amax = 0.0f;
  int64_t i0 = 0;
#if defined(__AVX2__)
  i0 = absmax_avx2(x, n, amax);
#endif
  amax = std::max(amax, absmax(x + i0, n - i0));
  const float s = sym_scale(amax, clip, bits);
  if (s == 0.0f) {
    std::fill(q, q + n, int8_t(0));
    return s;
  }
  int64_t i = 0;
  if (rounding == Rounding::kReciprocal) {
    const float r = sym_recip(s);
#if defined(__AVX2__) && defined(__FMA__)
    i = quantize_avx2<Rounding::kReciprocal>(x, n, r, bits, q);
#endif
    for (; i < n; ++i) q[i] = sym_quant_recip(x[i], r, bits);
    return s;
  }
#if defined(__AVX2__)
  i = quantize_avx2<Rounding::kDivide>(x, n, s, bits, q);
#endif
  for (; i < n; ++i) q[i] = sym_quant(x[i], s, bits);
  return s;
}

void quantize_sym_groups(const float* x, int64_t n, int64_t group, int bits, float clip, int8_t* q,
                         float* scales, Rounding rounding) {
  ATOM_CHECK(group > 0, "group quantization: group must be positive, got {}", group);
  for (int64_t g = 0, k0 = 0; k0 < n; ++g, k0 += group) {
    const int64_t len = std::min(group, n - k0);
    scales[g] = quantize_sym_segment(x + k0, len, bits, clip, q + k0, rounding);
  }
}

void quantize_rows_int8(const float* x, int64_t rows, int64_t cols, float clip, int8_t* q, float* scales) {
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) scales[r] = quantize_sym_segment(x + r * cols, cols, 8, clip, q + r * cols);
}

}  // namespace atom::quant
