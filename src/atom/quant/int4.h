// INT4 packing (docs/quant-format.md §1). Two 4-bit values per byte, row-major:
//   element 2i   -> low  nibble (bits 0..3) of byte i
//   element 2i+1 -> high nibble (bits 4..7) of byte i
// Signed values are two's-complement nibbles (-8..7: 0x8 = -8, 0xF = -1); unsigned values (KV cache)
// are 0..15. An odd count leaves the last byte's high nibble 0. This is the order a GPU reads with
// one 32-bit load = 8 consecutive elements, element j at bits 4j..4j+3 (little-endian).
#pragma once
#include <cstdint>

namespace atom::quant {

// Bytes needed for n packed nibbles.
constexpr int64_t int4_bytes(int64_t n) { return (n + 1) / 2; }

// Sign-extends the nibble v & 0xF to -8..7.
constexpr int8_t int4_sext(uint8_t v) { return int8_t(int8_t(uint8_t(v << 4)) >> 4); }

// q[0..n) in -8..7 -> out[0..int4_bytes(n)). Values outside -8..7 are truncated to their low nibble
// (callers always pass clamped values).
inline void pack_int4(const int8_t* q, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i + 1 < n; i += 2) out[i / 2] = uint8_t((uint8_t(q[i]) & 0xF) | (uint8_t(q[i + 1]) << 4));
  if (n & 1) out[n / 2] = uint8_t(uint8_t(q[n - 1]) & 0xF);
}

inline void unpack_int4(const uint8_t* in, int64_t n, int8_t* q) {
  for (int64_t i = 0; i + 1 < n; i += 2) {
    q[i] = int4_sext(in[i / 2]);
    q[i + 1] = int4_sext(uint8_t(in[i / 2] >> 4));
  }
  if (n & 1) q[n - 1] = int4_sext(in[n / 2]);
}

// Unsigned variant (0..15), for the asymmetric KV cache.
inline void pack_uint4(const uint8_t* q, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i + 1 < n; i += 2) out[i / 2] = uint8_t((q[i] & 0xF) | (q[i + 1] << 4));
  if (n & 1) out[n / 2] = uint8_t(q[n - 1] & 0xF);
}

inline void unpack_uint4(const uint8_t* in, int64_t n, uint8_t* q) {
  for (int64_t i = 0; i + 1 < n; i += 2) {
    q[i] = in[i / 2] & 0xF;
    q[i + 1] = uint8_t(in[i / 2] >> 4);
  }
  if (n & 1) q[n - 1] = in[n / 2] & 0xF;
}

}  // namespace atom::quant
