// Atom W4A4 + INT8-outlier linear on the GPU (docs/quant-format.md §3): the activation quantizer and
// the GEMM, with device-side layouts. Host header (g++ and nvcc); kernels are in the .cu files.
//
// GPU layout (what the quantizer writes and the GEMM reads); group = 128 only:
//   q4     [rows, G*64] bytes: the K_n normal channels, each group padded to 128 with zeros (the ragged
//          last group of e.g. K=576 is zero-padded), packed INT4. Inside every 32-element chunk of a
//          group (16 bytes) the nibbles are in "MMA order": 32-bit word t (t = 0..3) holds elements
//          4t..4t+3 at bits 0..15 and 16+4t..16+4t+3 at bits 16..31 (element order inside each half as
//          int4.h). One word then unpacks to the a0/a2 (or b0/b1) fragments of mma m16n8k32.
//   scale  [rows, G] fp16 bits (the fp16-valued scales of quantize.h, saturated at 65504), allocated
//          with GpuAtomLayout::scale_elems(rows) elements
//   q8     [rows, O] int8 outliers (row-major, O = n_outlier, a multiple of 16)
//   oscale [rows]    fp16 bits, the per-row outlier scale
// rows = tokens (activations) or output channels (weights).
#pragma once
#include <cstdint>
#include <vector>

#include "atom/backend/cuda/device.h"

namespace atom::quant {
struct AtomWeights;
}

namespace atom::cuda {

struct GpuAtomLayout {
  int64_t k = 0, n_outlier = 0, k_normal = 0, n_groups = 0;
  static constexpr int64_t kGroup = 128;
  int64_t q4_row_bytes() const { return n_groups * kGroup / 2; }
  // Elements of a `scale` buffer of `rows` rows: rows * G rounded up to even (the decode GEMM copies the
  // scales as 32-bit words, so the last word must lie inside the allocation).
  int64_t scale_elems(int64_t rows) const { return (rows * n_groups + 1) / 2 * 2; }
};
// Validates (group 128, O % 16 == 0, O < K) and fills the layout; throws atom::Error otherwise.
GpuAtomLayout make_gpu_layout(int64_t k, int64_t n_outlier, int64_t group);

struct GpuAtomWeights {
  int64_t n = 0, k = 0;
  GpuAtomLayout L;
  float a_clip = 0.9f, a_outlier_clip = 1.0f;
  DeviceBuffer<int32_t> perm;    // [K]
  DeviceBuffer<uint16_t> stage;  // [K] the fused quantizers' staging table of perm (fused_quant.h)
  DeviceBuffer<uint8_t> q4;    // [N, G*64]
  DeviceBuffer<uint16_t> scale;
  DeviceBuffer<int8_t> q8;
  DeviceBuffer<uint16_t> oscale;
};
// Repacks a CPU AtomWeights (outlier_bits 8, a_bits 4, group 128) into the GPU layout and uploads it.
void upload_atom_weights(const quant::AtomWeights& w, GpuAtomWeights& out, cudaStream_t s = nullptr);

// Host-side repacking helpers (also used by tests and the benchmark's synthetic weights).
// q: [rows, k_normal] int8 values in -8..7 (standard order) -> [rows, G*64] GPU-order bytes.
std::vector<uint8_t> pack_int4_gpu(const int8_t* q, int64_t rows, const GpuAtomLayout& L);
// Inverse: GPU bytes -> [rows, G*128] int8 (padding included).
std::vector<int8_t> unpack_int4_gpu(const uint8_t* p, int64_t rows, const GpuAtomLayout& L);

struct GpuAtomActs {
  int64_t m = 0;
  DeviceBuffer<uint8_t> q4;
  DeviceBuffer<uint16_t> scale;
  DeviceBuffer<int8_t> q8;
  DeviceBuffer<uint16_t> oscale;
  void resize(int64_t rows, const GpuAtomLayout& L);
};

// Uploads perm and its staging table (GpuAtomWeights::perm, ::stage; w.L must be set).
void upload_atom_perm(const std::vector<int32_t>& perm, GpuAtomWeights& w, cudaStream_t s = nullptr);

// x: [m, K] fp16 bits in the ORIGINAL channel order -> reorder (stage: atom_stage_table of the perm), quantize
// (INT4 groups with a_clip, INT8 outlier tail with a_outlier_clip), written in the GPU layout. acts must be resized.
void atom_quantize_acts_fp16(const uint16_t* x, int64_t m, const uint16_t* stage, const GpuAtomLayout& L,
                             float a_clip, float a_outlier_clip, GpuAtomActs& acts, cudaStream_t s = nullptr);

// y[m, N] = Atom linear. Exactly one of y_fp16 / y_f32 is non-null. psums (tests only, may be null):
// int32 [m, N, G+1 (outliers last, when O > 0)]. `force_config` (-1 = auto) and `force_splits`
// (0 = auto) pin the tile configuration, for tests and tuning. Configs 0..2: mma.sync m16n8k32 s8
// (tiles 16x64, 64x64, 128x128); config 3 (= atom_gemm_wgmma_config()): the sm_90a wgmma kernel
// (128x128 tile, two warpgroups), which auto dispatch picks for large M on an sm_90 device; configs 4..6:
// its 64x128-tile and N-split variants; config 7 (= atom_gemm_ws_config()): the warp-specialized wgmma
// kernel (TMA-free producer warpgroup + two consumer warpgroups, A unpacked into registers); 8..11: its
// ring-depth and consumer-loop variants, of which auto dispatch picks 11 (5-stage ring, one-step loop) for
// M >= 17 (docs/kernels.md); configs 12, 13: the decode kernel with A / B swapped (64 or 128 weight rows x 8
// tokens; not dispatched); config 14: config 9 with the two consumer warpgroups' wgmma in turns (ping-pong; not
// dispatched); configs 15, 16: the streaming decode kernel, 16 weight rows x 8 / 16 tokens, weights straight to
// registers (auto dispatch picks 15 for M <= 8 and 16 for M = 9..16); config 17: config 9
// with split-K summed by the tile's last CTA (not dispatched); config 18: the streaming kernel with 32 tokens per
// tile (auto dispatch picks it for M = 17..32); configs 19-21: the TMA-fed warp-specialized kernel (packed A / B
// tiles by 2D tensor copies, kP - 2 steps ahead, 6 + 3 packed + unpacked stages; 19: A unpacked into registers by
// the consumers, 20: A unpacked into shared memory by the producer, 21: config 20 with early scale loads; each
// falls back to config 11 when O > 128 or a base is not 16-byte aligned; atom_gemm_tma.cu, results.md §12-13);
// auto dispatch picked 19 where it used to pick 11; config 22: config 19 with two groups per TMA copy (128-byte
// box rows, 4 + 3 stages), 23: config 22 with float2 column scales, dispatched instead of 19 (results.md §14). (The configs 19-21
// of results.md §11 were measured slower than 11 and removed; the numbers were reused.)
void atom_gemm(const GpuAtomActs& a, const GpuAtomWeights& w, uint16_t* y_fp16, float* y_f32,
               int32_t* psums = nullptr, cudaStream_t s = nullptr, int force_config = -1, int force_splits = 0);
int atom_gemm_num_configs();
int atom_gemm_wgmma_config();
int atom_gemm_ws_config();
bool atom_gemm_wgmma_available();  // the current device can run the wgmma kernel (compute capability 9.x)

}  // namespace atom::cuda
