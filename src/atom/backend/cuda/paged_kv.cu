// Paged KV cache: sizing, allocation, the quantize-on-write append kernel, the attention workspace and
// the decode/prefill dispatch. Kernels for attention live in attention_decode.cu / attention_prefill.cu.
#include <cuda_fp16.h>

#include <string>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/kv_quant.cuh"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {

void PagedKvSpec::validate() const {
  ATOM_CUDA_REQUIRE(n_layers > 0 && n_kv_heads > 0, "PagedKvSpec: n_layers and n_kv_heads must be positive");
  ATOM_CUDA_REQUIRE(head_dim == 64 || head_dim == 128, "PagedKvSpec: head_dim must be 64 or 128");
  ATOM_CUDA_REQUIRE(page_size == 16 || page_size == 32, "PagedKvSpec: page_size must be 16 or 32");
  ATOM_CUDA_REQUIRE(n_pages >= 0 && n_pages < (int64_t(1) << 31) / page_size,
                    "PagedKvSpec: n_pages out of range (slots are int32)");
}

int64_t PagedKvSpec::bytes_per_page() const {
  PagedKvLayout l = layout();
  l.n_pages = 1;
  return l.total_bytes();
}

PagedKvCache::PagedKvCache(const PagedKvSpec& spec) : spec_(spec) {
  spec_.validate();
  pool_.resize(size_t(spec_.layout().total_bytes()));
}

int64_t PagedKvCache::pages_that_fit(PagedKvSpec spec, int64_t bytes) {
  spec.n_pages = 1;
  spec.validate();
  const int64_t per = spec.bytes_per_page();
  return bytes > 0 ? bytes / per : 0;
}

// ---- append: one warp per (token, kv head, K|V); lane i holds elements [i*D/32, (i+1)*D/32) ----
namespace {

template <KvDtype DT, int D>
__global__ void __launch_bounds__(128) kv_append_kernel(PagedKvLayout L, uint8_t* __restrict__ pool, int layer,
                                                        const __half* __restrict__ k, const __half* __restrict__ v,
                                                        const int32_t* __restrict__ slots, int64_t T) {
  constexpr int E = D / 32;  // elements per lane: 4 or 2
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const int64_t n_work = T * L.n_kv_heads * 2;
  if (warp >= n_work) return;
  const int which = int(warp % 2);  // 0 = K, 1 = V
  const int head = int((warp / 2) % L.n_kv_heads);
  const int64_t t = warp / 2 / L.n_kv_heads;
  const int32_t slot = slots[t];
  if (slot < 0) return;
  const int64_t page = slot / L.page_size;
  const int off = slot % L.page_size;
  const __half* src = (which ? v : k) + (t * L.n_kv_heads + head) * D + lane * E;
  uint8_t* blk = pool + L.block_offset(layer, page, head);
  uint8_t* dst_row = blk + (which ? L.v_values() : L.k_values()) + off * L.row_bytes();

  __half h[E];
  if constexpr (E == 4) *reinterpret_cast<uint2*>(h) = *reinterpret_cast<const uint2*>(src);
  else *reinterpret_cast<uint32_t*>(h) = *reinterpret_cast<const uint32_t*>(src);
  if constexpr (DT == KvDtype::F16) {
    if constexpr (E == 4) *reinterpret_cast<uint2*>(dst_row + lane * 8) = *reinterpret_cast<uint2*>(h);
    else *reinterpret_cast<uint32_t*>(dst_row + lane * 4) = *reinterpret_cast<uint32_t*>(h);
  } else {
    // kv_quant.cuh: the exact arithmetic of atom::quant::kv_head_params / kv_quantize_head.
    constexpr int qmax = DT == KvDtype::I4 ? 15 : 255;
    float x[E], lo = 0.0f, hi = 0.0f;
#pragma unroll
    for (int i = 0; i < E; ++i) {
      x[i] = __half2float(h[i]);
      lo = x[i] < lo ? x[i] : lo;
      hi = x[i] > hi ? x[i] : hi;
    }
    const kvq::Params prm = kvq::warp_params<qmax>(lo, hi);
    uint32_t q[E];
#pragma unroll
    for (int i = 0; i < E; ++i) q[i] = kvq::quantize<qmax>(x[i], prm);
    if constexpr (DT == KvDtype::I4) {
      if constexpr (E == 4)
        *reinterpret_cast<uint16_t*>(dst_row + lane * 2) = uint16_t(q[0] | q[1] << 4 | q[2] << 8 | q[3] << 12);
      else
        dst_row[lane] = uint8_t(q[0] | q[1] << 4);
    } else {
      if constexpr (E == 4)
        *reinterpret_cast<uint32_t*>(dst_row + lane * 4) = q[0] | q[1] << 8 | q[2] << 16 | q[3] << 24;
      else
        *reinterpret_cast<uint16_t*>(dst_row + lane * 2) = uint16_t(q[0] | q[1] << 8);
    }
    if (lane == 0) kvq::store_params(blk, L, which == 1, off, prm);
  }
}

template <KvDtype DT>
void launch_append(const PagedKvLayout& L, uint8_t* pool, int layer, const uint16_t* k, const uint16_t* v,
                   const int32_t* slots, int64_t T, cudaStream_t s) {
  const int64_t warps = T * L.n_kv_heads * 2;
  const dim3 grid(unsigned((warps + 3) / 4));
  const auto* kh = reinterpret_cast<const __half*>(k);
  const auto* vh = reinterpret_cast<const __half*>(v);
  if (L.head_dim == 128) kv_append_kernel<DT, 128><<<grid, 128, 0, s>>>(L, pool, layer, kh, vh, slots, T);
  else kv_append_kernel<DT, 64><<<grid, 128, 0, s>>>(L, pool, layer, kh, vh, slots, T);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void kv_append(PagedKvCache& kv, int layer, const uint16_t* k, const uint16_t* v, const int32_t* slot_mapping,
               int64_t T, cudaStream_t s) {
  const PagedKvLayout L = kv.layout();
  ATOM_CUDA_REQUIRE(layer >= 0 && layer < L.n_layers, "kv_append: layer out of range");
  ATOM_CUDA_REQUIRE(T >= 0 && T * L.n_kv_heads * 2 / 4 < (int64_t(1) << 31), "kv_append: T out of range");
  if (T == 0) return;
  ATOM_CUDA_REQUIRE(k && v && slot_mapping, "kv_append: null pointer");
  switch (L.dtype) {
    case KvDtype::F16: launch_append<KvDtype::F16>(L, kv.data(), layer, k, v, slot_mapping, T, s); break;
    case KvDtype::I8: launch_append<KvDtype::I8>(L, kv.data(), layer, k, v, slot_mapping, T, s); break;
    case KvDtype::I4: launch_append<KvDtype::I4>(L, kv.data(), layer, k, v, slot_mapping, T, s); break;
  }
}

AttentionWorkspace::AttentionWorkspace(int64_t max_tokens_, int n_heads_, int head_dim_)
    : max_tokens(max_tokens_), n_heads(n_heads_), head_dim(head_dim_) {
  ATOM_CUDA_REQUIRE(max_tokens > 0 && n_heads > 0 && (head_dim == 64 || head_dim == 128),
                    "AttentionWorkspace: bad shape (head_dim must be 64 or 128)");
  // Enough partial rows for kMaxSplits splits of every (token, head) when the batch is small, capped
  // at ~64 MiB for large batches (which need few splits: B * kv_heads CTAs already fill the GPU).
  const int64_t want = max_tokens * n_heads * kDecodeMaxSplits;
  const int64_t cap = (int64_t(64) << 20) / (int64_t(head_dim + 2) * 4);
  max_partials = std::max<int64_t>(std::min(want, cap), max_tokens * n_heads);
  partials.resize(size_t(max_partials * (head_dim + 2)));
}

void paged_attention(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* cu_q,
                     const int32_t* seq_lens, const int32_t* block_tables, int max_blocks, int B, int64_t T,
                     int n_heads, float scale, uint16_t* out, AttentionWorkspace& ws, cudaStream_t s,
                     int max_q_per_seq) {
  ATOM_CUDA_REQUIRE(max_q_per_seq >= 1, "paged_attention: max_q_per_seq must be >= 1");
  if (max_q_per_seq == 1) {
    // Decode: one query per sequence, so cu_q is the identity and row b belongs to sequence b.
    ATOM_CUDA_REQUIRE(T == B, "paged_attention: with max_q_per_seq == 1, T must equal B");
    paged_attention_decode(kv, layer, q, seq_lens, block_tables, max_blocks, B, n_heads, scale, out, ws, s);
  } else {
    paged_attention_prefill(kv, layer, q, cu_q, seq_lens, block_tables, max_blocks, B, T, n_heads, scale, out, s,
                            max_q_per_seq);
  }
}

void check_attention_args(const PagedKvLayout& L, int layer, int max_blocks, int B, int n_heads) {
  ATOM_CUDA_REQUIRE(layer >= 0 && layer < L.n_layers, "paged_attention: layer out of range");
  ATOM_CUDA_REQUIRE(B >= 0 && max_blocks >= 1, "paged_attention: B must be >= 0 and max_blocks >= 1");
  ATOM_CUDA_REQUIRE(n_heads > 0 && n_heads % L.n_kv_heads == 0,
                    "paged_attention: n_heads must be a positive multiple of n_kv_heads");
  ATOM_CUDA_REQUIRE(L.page_size == 16 || L.page_size == 32, "paged_attention: page_size must be 16 or 32");
  ATOM_CUDA_REQUIRE(int64_t(L.n_kv_heads) * L.block_bytes() < (int64_t(1) << 31),
                    "paged_attention: one page of all kv heads must be < 2 GiB");
}

}  // namespace atom::cuda
