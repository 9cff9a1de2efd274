// CPU reference of the paged KV cache and paged attention (the oracle for the CUDA kernels in
// backend/cuda/paged_kv.h). It works on a host copy of the page pool in exactly the GPU byte layout
// (cuda/paged_kv_layout.h), so a test can compare pools byte for byte and run both attentions over the
// same cache. Math is fp32 values from the dequantized cache, sums in double.
#pragma once
#include <cstdint>

#include "atom/backend/cuda/paged_kv_layout.h"

namespace atom::cpu {

using atom::cuda::PagedKvLayout;

// Reference of cuda::kv_append: rows [T, n_kv_heads*head_dim] of K and V (fp16-representable floats)
// into `pool` (layout.total_bytes() bytes); int8/int4 through atom::quant::kv_quantize_rows.
void paged_kv_append_ref(uint8_t* pool, const PagedKvLayout& layout, int layer, const float* k, const float* v,
                         const int32_t* slot_mapping, int64_t T);

// Dequantized K (v=false) or V (v=true) of one token (page, offset) of one kv head: head_dim floats.
void paged_kv_read_row(const uint8_t* pool, const PagedKvLayout& layout, int layer, int64_t page, int offset,
                       int head, bool v, float* out);

// Reference of cuda::paged_attention with host arrays (same argument meaning); out [T, n_heads*head_dim].
void paged_attention_ref(const uint8_t* pool, const PagedKvLayout& layout, int layer, const float* q,
                         const int32_t* cu_q, const int32_t* seq_lens, const int32_t* block_tables, int max_blocks,
                         int B, int n_heads, float scale, float* out);

}  // namespace atom::cpu
