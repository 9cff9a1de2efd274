#include "atom/backend/cpu/paged_attention_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/quant/kv_quant.h"

namespace atom::cpu {
namespace {

void check_layout(const PagedKvLayout& L, int layer) {
  ATOM_CHECK(layer >= 0 && layer < L.n_layers, "paged KV: layer {} out of range [0, {})", layer, L.n_layers);
  ATOM_CHECK(L.head_dim > 0 && L.head_dim % 2 == 0 && L.n_kv_heads > 0 && L.page_size > 0,
             "paged KV: bad layout (head_dim {}, n_kv_heads {}, page_size {})", L.head_dim, L.n_kv_heads, L.page_size);
}

uint16_t rd16(const uint8_t* p) { uint16_t h; std::memcpy(&h, p, 2); return h; }
void wr16(uint8_t* p, uint16_t h) { std::memcpy(p, &h, 2); }

}  // namespace

void paged_kv_append_ref(uint8_t* pool, const PagedKvLayout& L, int layer, const float* k, const float* v,
                         const int32_t* slot_mapping, int64_t T) {
  check_layout(L, layer);
  const int D = L.head_dim, H = L.n_kv_heads, bits = atom::cuda::kv_bits(L.dtype);
  std::vector<uint8_t> packed(size_t(L.row_bytes()) * H);
  std::vector<float> scales(static_cast<size_t>(H));
  std::vector<uint8_t> zeros(static_cast<size_t>(H));
  for (int64_t t = 0; t < T; ++t) {
    const int32_t slot = slot_mapping[t];
    if (slot < 0) continue;
    const int64_t page = slot / L.page_size;
    const int off = slot % L.page_size;
    ATOM_CHECK(page < L.n_pages, "paged KV: slot {} beyond {} pages", slot, L.n_pages);
    for (int which = 0; which < 2; ++which) {
      const float* row = (which ? v : k) + t * int64_t(H) * D;
      if (bits == 16) {
        for (int h = 0; h < H; ++h) {
          uint8_t* dst = pool + L.block_offset(layer, page, h) + (which ? L.v_values() : L.k_values()) + off * L.row_bytes();
          for (int i = 0; i < D; ++i) wr16(dst + 2 * i, atom::float_to_fp16(row[int64_t(h) * D + i]));
        }
        continue;
      }
      atom::quant::kv_quantize_rows(row, 1, int64_t(H) * D, H, D, bits, packed.data(), scales.data(), zeros.data());
      for (int h = 0; h < H; ++h) {
        uint8_t* blk = pool + L.block_offset(layer, page, h);
        std::memcpy(blk + (which ? L.v_values() : L.k_values()) + off * L.row_bytes(),
                    packed.data() + size_t(h) * L.row_bytes(), size_t(L.row_bytes()));
        wr16(blk + (which ? L.v_scales() : L.k_scales()) + 2 * off, atom::float_to_fp16(scales[size_t(h)]));
        blk[(which ? L.v_zeros() : L.k_zeros()) + off] = zeros[size_t(h)];
      }
    }
  }
}

void paged_kv_read_row(const uint8_t* pool, const PagedKvLayout& L, int layer, int64_t page, int off, int head,
                       bool v, float* out) {
  const uint8_t* blk = pool + L.block_offset(layer, page, head);
  const uint8_t* src = blk + (v ? L.v_values() : L.k_values()) + off * L.row_bytes();
  const int D = L.head_dim;
  if (L.dtype == atom::cuda::KvDtype::F16) {
    for (int i = 0; i < D; ++i) out[i] = atom::fp16_to_float(rd16(src + 2 * i));
    return;
  }
  const float scale = atom::fp16_to_float(rd16(blk + (v ? L.v_scales() : L.k_scales()) + 2 * off));
  const uint8_t zero = blk[(v ? L.v_zeros() : L.k_zeros()) + off];
  const int bits = atom::cuda::kv_bits(L.dtype);
  atom::quant::kv_dequantize_rows(src, &scale, &zero, 1, 1, D, bits, out, D);
}

void paged_attention_ref(const uint8_t* pool, const PagedKvLayout& L, int layer, const float* q, const int32_t* cu_q,
                         const int32_t* seq_lens, const int32_t* block_tables, int max_blocks, int B, int n_heads,
                         float scale, float* out) {
  check_layout(L, layer);
  const int D = L.head_dim, Hkv = L.n_kv_heads;
  ATOM_CHECK(n_heads > 0 && n_heads % Hkv == 0, "paged attention: n_heads {} not a multiple of n_kv_heads {}",
             n_heads, Hkv);
  const int G = n_heads / Hkv;
  const int64_t qstride = int64_t(n_heads) * D;
  for (int b = 0; b < B; ++b) {
    const int nq = cu_q[b + 1] - cu_q[b], len = seq_lens[b];
    ATOM_CHECK(nq >= 0 && nq <= len, "paged attention: sequence {} has {} queries but length {}", b, nq, len);
    ATOM_CHECK((len + L.page_size - 1) / L.page_size <= max_blocks, "paged attention: sequence {} needs more than {} blocks",
               b, max_blocks);
    if (nq == 0) continue;
    // Dequantize the sequence's K/V once per kv head, then one parallel level over (query head, row).
    std::vector<float> K(static_cast<size_t>(len) * Hkv * D), V(K.size());
#pragma omp parallel for schedule(static)
    for (int t = 0; t < len; ++t) {
      const int64_t page = block_tables[int64_t(b) * max_blocks + t / L.page_size];
      for (int hk = 0; hk < Hkv; ++hk) {
        paged_kv_read_row(pool, L, layer, page, t % L.page_size, hk, false, &K[(size_t(hk) * len + t) * D]);
        paged_kv_read_row(pool, L, layer, page, t % L.page_size, hk, true, &V[(size_t(hk) * len + t) * D]);
      }
    }
#pragma omp parallel for schedule(dynamic) collapse(2)
    for (int h = 0; h < n_heads; ++h)
      for (int i = 0; i < nq; ++i) {
        const float* Kh = &K[size_t(h / G) * len * D];
        const float* Vh = &V[size_t(h / G) * len * D];
        const int64_t row = cu_q[b] + i;
        const int pos = len - nq + i;
        const float* qr = q + row * qstride + int64_t(h) * D;
        std::vector<double> s(static_cast<size_t>(pos + 1)), acc(static_cast<size_t>(D), 0.0);
        double mx = -std::numeric_limits<double>::infinity();
        for (int t = 0; t <= pos; ++t) {
          double d = 0;
          for (int j = 0; j < D; ++j) d += double(qr[j]) * Kh[size_t(t) * D + j];
          s[size_t(t)] = d * scale;
          mx = std::max(mx, s[size_t(t)]);
        }
        double sum = 0;
        for (int t = 0; t <= pos; ++t) {
          const double p = std::exp(s[size_t(t)] - mx);
          sum += p;
          for (int j = 0; j < D; ++j) acc[size_t(j)] += p * Vh[size_t(t) * D + j];
        }
        float* o = out + row * qstride + int64_t(h) * D;
        for (int j = 0; j < D; ++j) o[j] = float(acc[size_t(j)] / sum);
      }
  }
}

}  // namespace atom::cpu
