// RoPE + KV append from fp32 q/k/v (the GPU model's path when it keeps the stacked q/k/v GEMM output in
// fp32, as the CPU reference does): q is rotated in fp32 and rounded to fp16 once (the attention kernels'
// input); K is rotated in fp32 and K/V are written into the paged cache straight from fp32 —
// quantized on write for I8/I4 with atom::quant::kv_head_params / kv_quantize_head's arithmetic, so the
// INT4 K/V equal the CPU reference's instead of those of an fp16-rounded copy (a rounding of q/k/v to
// fp16 before INT4 KV moved SmolLM2's atom perplexity by ~0.8%; docs/results.md).
// Layout accessors are paged_kv_layout.h's (the same bytes the attention kernels read).
#pragma once
#include <cstdint>

#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {

// qkv [T, (nh + 2·nkv)·hd] fp32; pos [T]; slots [T] (page*page_size + offset, -1 skips the K/V write).
// Writes q16 [T, nh·hd] fp16 (RoPE'd) and layer `layer` of the cache. hd must be the cache's head_dim
// and nkv its n_kv_heads. RoPE: HF rotate-half, angle = float(pos)·inv_freq[i] in fp32 (as rope_split).
void rope_kv_append_f32(const float* qkv, const int32_t* pos, const float* inv_freq, int64_t T, int nh, int nkv,
                        int hd, uint16_t* q16, PagedKvCache& kv, int layer, const int32_t* slots, cudaStream_t s);

}  // namespace atom::cuda
