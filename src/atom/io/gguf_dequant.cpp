// ggml block formats -> fp32. Block layouts (little-endian, packed, see ggml-common.h):
//   Q8_0: fp16 d, int8 q[32]                  x[j] = q[j] * d
//   Q4_0: fp16 d, uint8 qs[16]                x[j] = ((qs[j] & 15) - 8) * d, x[j+16] = ((qs[j] >> 4) - 8) * d
//   Q4_1: fp16 d, fp16 m, uint8 qs[16]        x[j] = (qs[j] & 15) * d + m,   x[j+16] = (qs[j] >> 4) * d + m
// q * d is exact in fp32 (<= 8-bit integer times an 11-bit fp16 mantissa), so the result is
// round(q * d + m) whether or not the compiler fuses it into an FMA: bit-identical to ggml and
// to the gguf Python package.
#include <cstring>

#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/io/gguf.h"

namespace atom::io {
namespace {

constexpr int64_t kQK = 32;  // block size of Q8_0 / Q4_0 / Q4_1

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);  // blocks are byte-packed: no alignment guarantee
  return v;
}

void dequant_q8_0(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, src += 34, dst += kQK) {
    const float d = fp16_to_float(load_u16(src));
    const int8_t* q = reinterpret_cast<const int8_t*>(src + 2);
    for (int j = 0; j < kQK; ++j) dst[j] = float(q[j]) * d;
  }
}

void dequant_q4_0(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, src += 18, dst += kQK) {
    const float d = fp16_to_float(load_u16(src));
    const uint8_t* qs = src + 2;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = float(int(qs[j] & 0x0f) - 8) * d;
      dst[j + kQK / 2] = float(int(qs[j] >> 4) - 8) * d;
    }
  }
}

void dequant_q4_1(const uint8_t* src, float* dst, int64_t nblocks) {
  for (int64_t b = 0; b < nblocks; ++b, src += 20, dst += kQK) {
    const float d = fp16_to_float(load_u16(src));
    const float m = fp16_to_float(load_u16(src + 2));
    const uint8_t* qs = src + 4;
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = float(qs[j] & 0x0f) * d + m;
      dst[j + kQK / 2] = float(qs[j] >> 4) * d + m;
    }
  }
}

}  // namespace

void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n) {
  ATOM_CHECK(n >= 0, "dequantize_row: negative count {}", n);
  switch (GgmlType(type)) {
    case GgmlType::F32:
      std::memcpy(dst, src, size_t(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(load_u16(src + 2 * i));
      return;
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
      ATOM_CHECK(n % kQK == 0, "dequantize_row: {} values of {} is not a multiple of {}", n,
                 ggml_type_name(type), kQK);
      if (GgmlType(type) == GgmlType::Q8_0) dequant_q8_0(src, dst, n / kQK);
      else if (GgmlType(type) == GgmlType::Q4_0) dequant_q4_0(src, dst, n / kQK);
      else dequant_q4_1(src, dst, n / kQK);
      return;
    default:
      fail("dequantize_row: ggml type {} is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, "
           "Q4_1)",
           ggml_type_name(type));
  }
}

}  // namespace atom::io
