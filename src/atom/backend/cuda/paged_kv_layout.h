// Byte layout of the paged KV cache (docs/kv-cache.md). Plain C++ with no CUDA dependency: the GPU
// kernels, the host-side cache and the CPU reference (backend/cpu/paged_attention_ref) all address
// pages through this one struct, so the reference reads exactly the bytes the kernels read.
//
// One allocation holds every layer. Blocks are ordered [layer][page][kv_head]; one block is the
// page_size tokens of one kv head:
//   K values [page_size][head_dim]  fp16 (2 B), int8 (1 B) or int4 (head_dim/2 B per token, kv_quant
//                                    pack order: element 2i in the low nibble of byte i)
//   V values [page_size][head_dim]
//   (int8/int4 only) K scales [page_size] fp16, V scales [page_size] fp16, K zeros [page_size] u8,
//                    V zeros [page_size] u8
// Every part starts on a 16-byte boundary (head_dim 64/128, page_size 16/32), so a warp reads a
// page's K (or V) rows as one contiguous run with 16-byte loads.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define ATOM_HD __host__ __device__ __forceinline__
#else
#define ATOM_HD inline
#endif

namespace atom::cuda {

enum class KvDtype { F16, I8, I4 };

ATOM_HD int kv_bits(KvDtype d) { return d == KvDtype::F16 ? 16 : d == KvDtype::I8 ? 8 : 4; }

struct PagedKvLayout {
  int n_layers = 0, n_kv_heads = 0, head_dim = 0, page_size = 16;
  KvDtype dtype = KvDtype::F16;
  int64_t n_pages = 0;

  ATOM_HD bool quantized() const { return dtype != KvDtype::F16; }
  // Bytes of one token's values for one head (K or V).
  ATOM_HD int64_t row_bytes() const { return int64_t(head_dim) * kv_bits(dtype) / 8; }
  ATOM_HD int64_t values_bytes() const { return row_bytes() * page_size; }  // K (or V) of a block
  ATOM_HD int64_t block_bytes() const {
    return 2 * values_bytes() + (quantized() ? int64_t(page_size) * (2 + 2 + 1 + 1) : 0);
  }
  ATOM_HD int64_t layer_bytes() const { return n_pages * n_kv_heads * block_bytes(); }
  ATOM_HD int64_t total_bytes() const { return n_layers * layer_bytes(); }
  // Offsets from the start of the whole pool.
  ATOM_HD int64_t block_offset(int layer, int64_t page, int head) const {
    return ((int64_t(layer) * n_pages + page) * n_kv_heads + head) * block_bytes();
  }
  // Within a block.
  ATOM_HD int64_t k_values() const { return 0; }
  ATOM_HD int64_t v_values() const { return values_bytes(); }
  ATOM_HD int64_t k_scales() const { return 2 * values_bytes(); }
  ATOM_HD int64_t v_scales() const { return k_scales() + 2 * int64_t(page_size); }
  ATOM_HD int64_t k_zeros() const { return v_scales() + 2 * int64_t(page_size); }
  ATOM_HD int64_t v_zeros() const { return k_zeros() + page_size; }
};

}  // namespace atom::cuda
