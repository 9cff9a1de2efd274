// What the W4A4 + O128 GEMM kernels share (device-only header, nvcc): the kernel parameters, the
// shared-memory strides of packed tiles, the core-matrix offset of wgmma's no-swizzle layout, the
// promotion's magic-number conversion, the epilogue store, and the host launcher with split-K.
// Kernels: atom_gemm_mma.cu (mma.sync), atom_gemm.cu (wgmma), atom_gemm_ws.cu (warp-specialized wgmma),
// atom_gemm_stream.cu (streaming decode). Layouts: atom_gemm.h.
#pragma once
#include <cuda.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "atom/backend/cuda/cuda_check.h"

namespace atom::cuda::gemm_detail {

constexpr int kQ4Stride = 80;   // bytes per smem row of one INT4 group (64 + 16 pad: conflict-free)
constexpr int kQ8Stride = 144;  // bytes per smem row of a 128-wide INT8 outlier chunk (128 + 16 pad)

// int32 -> fp32 for |x| < 2^22 without the quarter-rate I2F: bits(x + 0x4B400000) is the float 1.5*2^23 + x.
constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
constexpr int32_t kMagicBits = 0x4B400000;

struct Params {
  const uint8_t* a4; const __half* sa; const int8_t* a8; const __half* sao;
  const uint8_t* w4; const __half* sw; const int8_t* w8; const __half* swo;
  int M, N, G, O, groups_per_split;
  __half* y16; float* y32; int32_t* psums; bool atomic_out;
  float* partials; int* counters;  // split-K with the last-CTA sum (kernels with KernelLaunch::splitk_sum)
};

// The TMA-fed kernel's parameters (a __grid_constant__ struct: the tensor maps must live in parameter space):
// maps of the packed A / B tiles and of the INT8 outlier A rows (atom_gemm_tma.cu).
// The maps come first, so their offsets (0, 128, 256) do not depend on how the host compiler aligns the struct.
// The tail pad makes the size a multiple of 64 explicitly: the device side pads to the maps' alignment, and the
// runtime copies that many bytes from the host object.
constexpr size_t kTmaParamsPad = 64 - sizeof(Params) % 64;  // (1..64)
struct TmaParams {
  CUtensorMap a4, w4, a8;
  Params p;
  char pad[kTmaParamsPad];
};
static_assert(sizeof(CUtensorMap) == 128 && sizeof(TmaParams) % 64 == 0);

// byte offset of (row r, 16-byte k-chunk kc) inside an operand of 128-byte rows, core-matrix layout
__device__ __forceinline__ int cm_off(int r, int kc) { return ((r >> 3) * 8 + kc) * 128 + (r & 7) * 16; }

// Epilogue store of two adjacent outputs (row offset + column c, c+1): split-K fp32 atomics, fp32,
// or fp16 (paired when aligned); columns past N are dropped. Shared by all GEMM kernels.
__device__ __forceinline__ void store_out_pair(const Params& p, int64_t o, int c, float v0, float v1) {
  if (p.atomic_out) {
    if (c < p.N) atomicAdd(p.y32 + o, v0);
    if (c + 1 < p.N) atomicAdd(p.y32 + o + 1, v1);
  } else if (p.y32) {
    if (c < p.N) p.y32[o] = v0;
    if (c + 1 < p.N) p.y32[o + 1] = v1;
  } else if (c + 1 < p.N && (p.N % 2) == 0) {
    *reinterpret_cast<__half2*>(p.y16 + o) = __floats2half2_rn(v0, v1);
  } else {
    if (c < p.N) p.y16[o] = __float2half_rn(v0);
    if (c + 1 < p.N) p.y16[o + 1] = __float2half_rn(v1);
  }
}

// Epilogue store of one output at offset o (the caller checks the bounds): the same three destinations.
__device__ __forceinline__ void store_out_one(const Params& p, int64_t o, float v) {
  if (p.atomic_out) atomicAdd(p.y32 + o, v);
  else if (p.y32) p.y32[o] = v;
  else p.y16[o] = __float2half_rn(v);
}

// Split-K without atomics: once the threads that hold the tile (`sync` is their barrier, `leader` one of them;
// by default the whole CTA) have written their partials to p.partials, counts the CTA in on its tile's counter.
// True in the tile's last CTA, which then sees every partial (splitk_sum_pair) and has re-armed the counter.
template <class Sync>
__device__ __forceinline__ bool splitk_last_cta(int* counter, int leader, Sync sync) {
  __shared__ int last;
  __threadfence();
  sync();
  if (int(threadIdx.x) == leader) {
    last = atomicAdd(counter, 1) == int(gridDim.z) - 1;
    if (last) *counter = 0;
  }
  sync();
  if (last) __threadfence();
  return last;
}
__device__ __forceinline__ bool splitk_last_cta(int* counter) {
  return splitk_last_cta(counter, 0, [] { __syncthreads(); });
}
// In the last CTA: output o (when first) and o + 1 (when second) summed over the splits (mn = M * N floats
// apart) in split order, so the bits do not depend on the order the CTAs ran in.
__device__ __forceinline__ void splitk_sum_pair(const Params& p, int64_t mn, int64_t o, bool first, bool second, float& v0,
                                                float& v1) {
  v0 = v1 = 0.0f;
  for (int z = 0; z < int(gridDim.z); ++z) {
    if (first) v0 += __ldcg(p.partials + z * mn + o);
    if (second) v1 += __ldcg(p.partials + z * mn + o + 1);
  }
}

// One kernel's launch shape.
struct KernelLaunch {
  void (*fn)(Params);
  int bm, bn, threads, smem;
  int ctas_per_sm;  // CTA slots per SM that auto split-K fills (ctas_per_sm x SMs blocks)
  bool splitk_sum = false;  // split-K through p.partials / p.counters (else fp32 atomics)
  void (*tma_fn)(TmaParams) = nullptr;  // set instead of fn: a kernel taking TmaParams (built at launch)
  int tma_groups = 1;  // tma_fn: groups per TMA box row (make_tma_params)
};
// Launches `k` over the (M, N) tiles; splits <= 0 picks split-K automatically (each split at least 4
// groups deep). With more than one split the partial outputs are either summed by the tile's last CTA
// (splitk_sum) or with fp32 atomics into y32 (or a workspace, then converted to fp16). In atom_gemm.cu.
void launch_gemm(Params p, const KernelLaunch& k, int splits, int sm_count, cudaStream_t s);

// The mma.sync kernel (atom_gemm_mma.cu), configs 0..2.
KernelLaunch mma_sync_kernel(int config);

// The streaming decode kernel (atom_gemm_stream.cu), configs 15 / 16 / 18: 1, 2 or 4 token tiles of 8.
KernelLaunch stream_kernel(int token_tiles);

// The warp-specialized kernel (atom_gemm_ws.cu): its launch shape (`psums`: the instance that writes them;
// `mode`: timing-only diagnostics; `variant`: ring depth, see the file), and whether it takes these operands (O <= 128).
KernelLaunch ws_kernel(bool psums, int mode = 0, int variant = 0);
bool ws_supports(const Params& p);

// The TMA-fed warp-specialized kernel (atom_gemm_tma.cu): launch shape (`variant`: ring depths, see the file),
// whether it takes these operands (O <= 128, 16-byte aligned bases), and its parameters with the tensor maps.
KernelLaunch tma_kernel(bool psums, int variant = 0, int mode = 0);
bool tma_supports(const Params& p);
TmaParams make_tma_params(const Params& p, int groups_per_stage = 1);

}  // namespace atom::cuda::gemm_detail
