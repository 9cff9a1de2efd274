#include "atom/quant/kv_quant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "atom/core/error.h"
#include "atom/quant/int4.h"
#include "atom/quant/quantize.h"

namespace atom::quant {
namespace {

int kv_qmax(int bits) {
  ATOM_CHECK(bits == 4 || bits == 8, "KV quantization: bits must be 4 or 8, got {}", bits);
  return bits == 4 ? 15 : 255;
}

// clamp(rint(v), 0, qmax) with the clamp in float (NaN-safe, no UB on conversion).
inline uint8_t clamp_u(float v, int qmax) {
  v = std::fmax(std::nearbyint(v), 0.0f);
  return uint8_t(std::fmin(v, float(qmax)));
}

}  // namespace

KvHeadParams kv_head_params(const float* x, int64_t n, int bits) {
  const int qmax = kv_qmax(bits);
  float lo = 0.0f, hi = 0.0f;  // the range always contains 0 (header)
  for (int64_t i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  KvHeadParams p;
  p.scale = fp16_round_scale((hi - lo) / float(qmax));
  if (p.scale > 0.0f) {
    float z = std::nearbyint(-lo / p.scale);
    p.zero = uint8_t(std::fmin(std::fmax(z, 0.0f), float(qmax)));
  }
  return p;
}

void kv_quantize_head(const float* x, int64_t n, KvHeadParams p, int bits, uint8_t* q) {
  const int qmax = kv_qmax(bits);
  if (p.scale == 0.0f) {
    for (int64_t i = 0; i < n; ++i) q[i] = 0;
    return;
  }
  // rint(x/scale) + zero, rounded before adding the zero point (the documented order).
  for (int64_t i = 0; i < n; ++i) q[i] = clamp_u(std::nearbyint(x[i] / p.scale) + float(p.zero), qmax);
}

void kv_fake_quant_rows(float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits) {
  kv_qmax(bits);
#pragma omp parallel for schedule(static) if (m >= 64)
  for (int64_t r = 0; r < m; ++r) {
    std::vector<uint8_t> q(static_cast<size_t>(head_dim));
    for (int h = 0; h < n_heads; ++h) {
      float* x = rows + r * stride + int64_t(h) * head_dim;
      const KvHeadParams p = kv_head_params(x, head_dim, bits);
      kv_quantize_head(x, head_dim, p, bits, q.data());
      for (int i = 0; i < head_dim; ++i) x[i] = kv_dequant(q[size_t(i)], p);
    }
  }
}

namespace {
// Byte layout of packed KV rows (validated once): each head's bytes start at offset(r, h).
struct PackedKvLayout {
  int64_t head_bytes = 0, row_bytes = 0;
  PackedKvLayout(int n_heads, int head_dim, int bits) {
    kv_qmax(bits);
    ATOM_CHECK(bits == 8 || head_dim % 2 == 0, "INT4 KV needs an even head_dim, got {}", head_dim);
    head_bytes = bits == 4 ? head_dim / 2 : head_dim;
    row_bytes = head_bytes * n_heads;
  }
  int64_t offset(int64_t r, int h) const { return r * row_bytes + int64_t(h) * head_bytes; }
};
}  // namespace

void kv_quantize_rows(const float* rows, int64_t m, int64_t stride, int n_heads, int head_dim, int bits,
                      uint8_t* packed, float* scales, uint8_t* zeros) {
  const PackedKvLayout layout(n_heads, head_dim, bits);
  std::vector<uint8_t> q(static_cast<size_t>(head_dim));
  for (int64_t r = 0; r < m; ++r)
    for (int h = 0; h < n_heads; ++h) {
      const float* x = rows + r * stride + int64_t(h) * head_dim;
      const KvHeadParams p = kv_head_params(x, head_dim, bits);
      scales[r * n_heads + h] = p.scale;
      zeros[r * n_heads + h] = p.zero;
      uint8_t* dst = packed + layout.offset(r, h);
      if (bits == 4) {
        kv_quantize_head(x, head_dim, p, bits, q.data());
        pack_uint4(q.data(), head_dim, dst);
      } else {
        kv_quantize_head(x, head_dim, p, bits, dst);
      }
    }
}

void kv_dequantize_rows(const uint8_t* packed, const float* scales, const uint8_t* zeros, int64_t m,
                        int n_heads, int head_dim, int bits, float* rows, int64_t stride) {
  const PackedKvLayout layout(n_heads, head_dim, bits);
  std::vector<uint8_t> q(static_cast<size_t>(head_dim));
  for (int64_t r = 0; r < m; ++r)
    for (int h = 0; h < n_heads; ++h) {
      const KvHeadParams p{scales[r * n_heads + h], zeros[r * n_heads + h]};
      const uint8_t* src = packed + layout.offset(r, h);
      if (bits == 4) unpack_uint4(src, head_dim, q.data());
      else std::copy(src, src + head_dim, q.begin());
      for (int i = 0; i < head_dim; ++i) rows[r * stride + int64_t(h) * head_dim + i] = kv_dequant(q[size_t(i)], p);
    }
}

}  // namespace atom::quant
