// Paged KV cache (fp16 / int8 / int4, quantize-on-write) and paged attention (decode: split-KV
// flash-decoding on tensor cores; prefill / chunked prefill: flash-attention on mma.sync). Layout in
// paged_kv_layout.h and docs/kv-cache.md. K is stored after RoPE (the caller appends RoPE'd K).
//
// Quantization is bit-identical to atom::quant::kv_quantize_rows (kv_quant.h) on the same fp16 inputs:
// asymmetric, one (scale fp16, zero u8) per token per kv head, the range widened to contain 0.
#pragma once
#include <cstdint>
#include <iterator>
#include <string_view>

#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/paged_kv_layout.h"

namespace atom::cuda {

struct PagedKvSpec {
  int n_layers = 0, n_kv_heads = 0, head_dim = 0, page_size = 16;  // page_size 16 or 32; head_dim 64 or 128
  KvDtype dtype = KvDtype::F16;
  int64_t n_pages = 0;
  int64_t bytes_per_page() const;  // all layers, K+V, values + scale/zero
  PagedKvLayout layout() const { return {n_layers, n_kv_heads, head_dim, page_size, dtype, n_pages}; }
  void validate() const;           // throws atom::Error on an unsupported shape
};

// Owns the device memory of all layers. Page p holds positions [p_off, p_off+page_size) of whichever
// sequence's block table names it, in every layer.
class PagedKvCache {
 public:
  explicit PagedKvCache(const PagedKvSpec& spec);
  static int64_t pages_that_fit(PagedKvSpec spec, int64_t bytes);  // sizing from free memory
  const PagedKvSpec& spec() const { return spec_; }
  PagedKvLayout layout() const { return spec_.layout(); }
  // The whole pool (layout().total_bytes() bytes); block (layer, page, head) at layout().block_offset().
  uint8_t* data() { return pool_.data(); }
  const uint8_t* data() const { return pool_.data(); }
  int64_t bytes() const { return int64_t(pool_.bytes()); }

 private:
  PagedKvSpec spec_;
  DeviceBuffer<uint8_t> pool_;
};

// Writes T new rows of `layer` (fp16 K and V, [T, n_kv_heads*head_dim], K already RoPE'd), quantizing on
// write for I8/I4. slot_mapping[t] = page*page_size + offset_in_page; -1 skips the row. Device pointers.
void kv_append(PagedKvCache& kv, int layer, const uint16_t* k, const uint16_t* v, const int32_t* slot_mapping,
               int64_t T, cudaStream_t s);

// Scratch for split-KV partial results, sized once for the largest batch.
// One decode launch at a time: launches on two streams need two workspaces (the split partials would race).
struct AttentionWorkspace {
  AttentionWorkspace(int64_t max_tokens, int n_heads, int head_dim);
  int64_t max_tokens = 0;
  int n_heads = 0, head_dim = 0;
  int64_t max_partials = 0;       // rows of (head_dim + 2) floats: O, then running max and sum
  DeviceBuffer<float> partials;
};

// Causal attention over a ragged batch of B sequences (decode and chunked prefill mixed):
// q [T, n_heads*head_dim] fp16 (RoPE'd); sequence b owns query rows cu_q[b]..cu_q[b+1]-1, which sit at
// positions seq_lens[b]-(cu_q[b+1]-cu_q[b]) .. seq_lens[b]-1; its keys/values (positions 0..seq_lens[b]-1,
// the new ones already appended) are in pages block_tables[b*max_blocks + j]. Query at position p sees
// keys <= p. GQA: query head h uses kv head h / (n_heads/n_kv_heads). out [T, n_heads*head_dim] fp16.
// cu_q, seq_lens, block_tables are device int32 arrays. Picks the decode (split-KV) kernel when every
// sequence has one query (max_q_per_seq == 1), the tensor-core prefill kernel otherwise.
void paged_attention(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* cu_q,
                     const int32_t* seq_lens, const int32_t* block_tables, int max_blocks, int B, int64_t T,
                     int n_heads, float scale, uint16_t* out, AttentionWorkspace& ws, cudaStream_t s,
                     int max_q_per_seq /* host-known upper bound of cu_q diffs, for dispatch */);

// The two kernels behind paged_attention, callable directly (tests, benchmarks). decode requires one
// query per sequence (cu_q[b] = b); num_splits <= 0 picks the split count from the device's SM count.
// groups_per_step: 16-token groups a warp takes per online-softmax step (1 or 2 for int8/int4, 1 for fp16;
// <= 0: the default, 2 for int8/int4).
void paged_attention_decode(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* seq_lens,
                            const int32_t* block_tables, int max_blocks, int B, int n_heads, float scale,
                            uint16_t* out, AttentionWorkspace& ws, cudaStream_t s, int num_splits = 0,
                            int groups_per_step = 0);
// The prefill kernel: kWgmmaWs (attention_prefill_ws.cu: a producer warpgroup and two consumer warpgroups,
// FA3's structure) or kWgmma (attention_prefill_wgmma.cu: every thread fills, then computes), both sm_90a only
// (device_runs_sm90a()), or kMmaSync (attention_prefill.cu, FA2 style, any sm_80+ device). kAuto takes kWgmmaWs
// where it runs, else kMmaSync (results.md §15e, §16a). kWgmmaWsTma: kWgmmaWs with full fp16 tiles copied by TMA
// (one producer thread; int8 / int4 caches as kWgmmaWs), not yet measured against it (results.md §16h).
enum class PrefillKernel { kAuto, kMmaSync, kWgmma, kWgmmaWs, kWgmmaWsTma };
// Their names, in enum order, as `bench_attention --prefill-kernel` spells them.
inline constexpr const char* kPrefillKernelNames[] = {"auto", "mma", "wgmma", "wgmma-ws", "wgmma-ws-tma"};
inline const char* prefill_kernel_name(PrefillKernel k) { return kPrefillKernelNames[static_cast<int>(k)]; }
// The kernel called `name`; false for an unknown name.
inline bool parse_prefill_kernel(std::string_view name, PrefillKernel& out) {
  for (int i = 0; i < int(std::size(kPrefillKernelNames)); ++i)
    if (name == kPrefillKernelNames[i]) {
      out = static_cast<PrefillKernel>(i);
      return true;
    }
  return false;
}
void paged_attention_prefill(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* cu_q,
                             const int32_t* seq_lens, const int32_t* block_tables, int max_blocks, int B,
                             int64_t T, int n_heads, float scale, uint16_t* out, cudaStream_t s,
                             int max_q_per_seq, PrefillKernel kernel = PrefillKernel::kAuto);

}  // namespace atom::cuda
