// The PTX primitives of the CUDA backend, wrapped once, with names. Device-only header (nvcc).
// What is here is what the kernels use today:
//   cp.async (16 B, zero-fill) + commit/wait groups     global -> shared staging (sm_80+)
//   mma.sync m16n8k32 s8.s8 -> s32                      INT8 tensor-core MMA (sm_80+)
//   int4 -> int8 unpacking in registers                 (Hopper has no INT4 tensor cores)
//   fence.proxy.async                                   generic-proxy writes -> async proxy
// Still to add for the sm_90a GEMM (issue 4, part II): wgmma descriptors + wgmma.mma_async s8/e4m3,
// mbarrier, cp.async.bulk.tensor (TMA), ldmatrix/stmatrix.
#pragma once
#include <cstdint>

namespace atom::cuda::ptx {

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte global -> shared copy; when !valid the 16 shared bytes are zero-filled (src not read).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  const int src_size = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_size)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

// D(16x8, s32) += A(16x32, s8, row) * B(32x8, s8, col). Fragment layout (g = lane/4, t = lane%4):
//   a0: A[g][4t..4t+3]  a1: A[g+8][4t..]  a2: A[g][16+4t..]  a3: A[g+8][16+4t..]
//   b0: B[4t..4t+3][g]  b1: B[16+4t..][g]
//   c0,c1: C[g][2t,2t+1]  c2,c3: C[g+8][2t,2t+1]
__device__ __forceinline__ void mma_s8_16832(int32_t (&c)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                             uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Orders this thread's generic-proxy shared-memory writes before later async-proxy (TMA/wgmma) reads.
__device__ __forceinline__ void fence_proxy_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// Sign-extends the 4 nibbles of each byte lane: bytes holding 0..15 -> int8 -8..7.
__device__ __forceinline__ uint32_t sext_nibbles(uint32_t x) { return x | ((x & 0x08080808u) * 0x1Eu); }

// One 32-bit word of the GPU INT4 layout (8 nibbles, element i at bits 4i..4i+3) -> two words of 4
// int8 each: lo = elements 0..3, hi = elements 4..7.
__device__ __forceinline__ void unpack_int4x8(uint32_t w, uint32_t& lo, uint32_t& hi) {
  const uint32_t even = w & 0x0F0F0F0Fu;         // elements 0,2,4,6 in bytes 0..3
  const uint32_t odd = (w >> 4) & 0x0F0F0F0Fu;   // elements 1,3,5,7
  lo = sext_nibbles(__byte_perm(even, odd, 0x5140));  // e0 e1 e2 e3
  hi = sext_nibbles(__byte_perm(even, odd, 0x7362));  // e4 e5 e6 e7
}

}  // namespace atom::cuda::ptx
