// Pieces shared by the paged-attention kernels (decode and prefill): register conversions from the
// cache's stored integers to fp16 tensor-core operands, vector loads, and host-side checks.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "atom/backend/cuda/paged_kv_layout.h"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda {

// Most splits of one (sequence, head) the decode kernel uses (and the workspace is sized for).
constexpr int kDecodeMaxSplits = 64;

// Throws atom::Error on arguments every attention entry point shares (incl. page_size 16 or 32).
void check_attention_args(const PagedKvLayout& L, int layer, int max_blocks, int B, int n_heads);

// Calls f(dt, d) with the cache dtype and head dim (64 or 128: check_attention_args) as compile-time constants,
// std::integral_constant values (a kernel instance is decltype(dt)::value, decltype(d)::value); returns its result.
template <class F>
decltype(auto) with_kv_shape(KvDtype dtype, int head_dim, F&& f) {
  auto by_d = [&](auto dt) -> decltype(auto) {
    if (head_dim == 128) return f(dt, std::integral_constant<int, 128>{});
    return f(dt, std::integral_constant<int, 64>{});
  };
  switch (dtype) {
    case KvDtype::F16: return by_d(std::integral_constant<KvDtype, KvDtype::F16>{});
    case KvDtype::I8: return by_d(std::integral_constant<KvDtype, KvDtype::I8>{});
    default: return by_d(std::integral_constant<KvDtype, KvDtype::I4>{});
  }
}

// Where one (layer, kv head)'s blocks live in the pool: the block of page p starts at block(p); token t is in
// block-table entry t >> shift at slot t & mask (page_size 16 or 32, check_attention_args).
// The page stride fits in 32 bits (check_attention_args), so a block address is one 32x32->64 multiply-add.
struct HeadPages {
  const uint8_t* base;
  int32_t page_stride;
  int shift, mask;
  __device__ HeadPages(const PagedKvLayout& L, const uint8_t* pool, int layer, int head)
      : base(pool + L.block_offset(layer, 0, head)), page_stride(int32_t(int64_t(L.n_kv_heads) * L.block_bytes())),
        shift(L.page_size == 16 ? 4 : 5), mask(L.page_size - 1) {}
  // (page indices are >= 0: an unsigned 32 x 32 -> 64-bit product is one IMAD.WIDE.U32, the signed one three)
  __device__ const uint8_t* block(int page) const { return base + uint64_t(uint32_t(page)) * uint32_t(page_stride); }
};

namespace attn {

constexpr float kLog2e = 1.4426950408889634f;

// fp16 bits 0x6400 | b is 1024 + b exactly for b < 1024: building a half2 with this magic and then
// subtracting (1024 + zero) yields the integer (q - zero) exactly in fp16 with two integer-free ops.
__device__ __forceinline__ uint32_t lop3_and_or(uint32_t a, uint32_t mask, uint32_t bits) {
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(r) : "r"(a), "r"(mask), "r"(bits));  // (a & mask) | bits
  return r;
}
// Nibbles at bits 0..3 and 16..19 of w -> half2(1024 + n_lo, 1024 + n_hi).
__device__ __forceinline__ uint32_t nibbles_to_half2_biased(uint32_t w) {
  return lop3_and_or(w, 0x000F000Fu, 0x64006400u);
}
// Bytes 0 and 1 of w -> half2(1024 + b0, 1024 + b1).
__device__ __forceinline__ uint32_t bytes01_to_half2_biased(uint32_t w) { return __byte_perm(w, 0x64646464u, 0x4140); }
__device__ __forceinline__ uint32_t bytes23_to_half2_biased(uint32_t w) { return __byte_perm(w, 0x64646464u, 0x4342); }
__device__ __forceinline__ uint32_t hsub2_u32(uint32_t a, uint32_t b) {
  __half2 r = __hsub2(*reinterpret_cast<__half2*>(&a), *reinterpret_cast<__half2*>(&b));
  return *reinterpret_cast<uint32_t*>(&r);
}
// half2(1024 + z0, 1024 + z1) for zero points z0, z1 (0..255).
__device__ __forceinline__ uint32_t zero_bias_half2(uint32_t z0, uint32_t z1) { return 0x64006400u | z0 | (z1 << 16); }
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// N 32-bit words from global memory with the widest aligned vector loads (read-only path).
template <int N>
__device__ __forceinline__ void load_words(uint32_t (&w)[N], const uint8_t* p) {
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i) {
      const uint4 x = __ldg(reinterpret_cast<const uint4*>(p) + i);
      w[4 * i] = x.x; w[4 * i + 1] = x.y; w[4 * i + 2] = x.z; w[4 * i + 3] = x.w;
    }
  } else if constexpr (N == 2) {
    const uint2 x = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = x.x; w[1] = x.y;
  } else {
    static_assert(N == 1, "load_words: N must be 1, 2 or a multiple of 4");
    w[0] = __ldg(reinterpret_cast<const uint32_t*>(p));
  }
}

// 2^x with the MUFU alone (no denormal range fix-up): softmax weights below 2^-126 flush to 0, which no
// fp16 output can see. ex2(-inf) = +0.
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ float warp_max_quad(float x) {  // max over the 4 lanes of a quad
  x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
  return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float warp_sum_quad(float x) {
  x += __shfl_xor_sync(0xffffffffu, x, 1);
  return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

}  // namespace attn
}  // namespace atom::cuda
