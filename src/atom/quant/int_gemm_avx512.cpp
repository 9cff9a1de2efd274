// The AVX-512 VNNI kernel of int_gemm.h, compiled with a function-level target so the library keeps
// its x86-64-v3 baseline; it only runs after cpu_has_avx512vnni() said yes.
#include <algorithm>
#include <cstring>

#include "atom/core/error.h"
#include "atom/quant/int_gemm.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define ATOM_HAVE_AVX512_KERNEL 1
#endif

namespace atom::quant::detail {

#if defined(ATOM_HAVE_AVX512_KERNEL)

bool cpu_has_avx512vnni() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  return ok;
}

// MR=8 rows × 2 panels (32 columns). Per quad: two 64-byte weight loads, then for each row one
// 4-byte broadcast and two vpdpbusd (u8 activations × s8 weights, 4 products summed into each int32
// lane). INT4 groups arrive as qa+8 (0..15), INT8 groups as qa+128 (0..255); the sums cannot
// overflow int32 for any K below 2^31 / (255·127) ≈ 66,000 channels per group.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void group_dot_avx512vnni(
    const uint8_t* a, int64_t lda, const int8_t* w, int64_t panel_stride, int64_t nq, int32_t* acc) {
  constexpr int MR = kVnniRows;
  __m512i s[MR][2];
  for (int r = 0; r < MR; ++r) s[r][0] = s[r][1] = _mm512_setzero_si512();
  const int8_t* w1p = w + panel_stride;
  for (int64_t q = 0; q < nq; ++q) {
    const __m512i w0 = _mm512_loadu_si512(w + q * 64);
    const __m512i w1 = _mm512_loadu_si512(w1p + q * 64);
    for (int r = 0; r < MR; ++r) {
      int32_t v;
      std::memcpy(&v, a + r * lda + q * 4, 4);
      const __m512i av = _mm512_set1_epi32(v);
      s[r][0] = _mm512_dpbusd_epi32(s[r][0], av, w0);
      s[r][1] = _mm512_dpbusd_epi32(s[r][1], av, w1);
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm512_storeu_si512(acc + r * 32, s[r][0]);
    _mm512_storeu_si512(acc + r * 32 + 16, s[r][1]);
  }
}

#else

bool cpu_has_avx512vnni() { return false; }
void group_dot_avx512vnni(const uint8_t*, int64_t, const int8_t*, int64_t, int64_t, int32_t*) {
  fail("integer GEMM: AVX-512 VNNI kernel not compiled in");
}

#endif

}  // namespace atom::quant::detail
