// The PTX primitives of the CUDA backend, wrapped once, with names. Device-only header (nvcc).
// What is here is what the kernels use today:
//   cp.async (16 / 4 B, zero-fill) + commit/wait groups   global -> shared staging (sm_80+)
//   mma.sync m16n8k32 s8.s8 -> s32                      INT8 tensor-core MMA (sm_80+)
//   int4 -> int8 unpacking in registers                 (Hopper has no INT4 tensor cores)
//   fence.proxy.async                                   generic-proxy writes -> async proxy
//   wgmma (sm_90a): shared-memory matrix descriptors (no-swizzle K-major canonical layout),
//   wgmma.fence / commit_group / wait_group, wgmma.mma_async m64n128k32 / m64n64k32 s8.s8 -> s32
//   wgmma m64n128k32 s8 with A from registers (the warp-specialized W4A4 GEMM)
//   mbarrier init / arrive / parity wait, setmaxnreg                 producer/consumer pipelines
//   mma.sync m16n8k16 f16 -> f32, ldmatrix x4 (+ .trans)     paged attention (issue 5)
//   cp.async.bulk.tensor 2D (TMA) completing on an mbarrier (expect_tx), tensor-map prefetch, the 64B / 128B
//   swizzled tile layouts TMA writes and wgmma reads (host side of the tensor maps: tma.h)
// Still to add: e4m3 wgmma, stmatrix.
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
// 4-byte global -> shared copy (through L1: .cg takes 16 bytes only); zero-filled when !valid.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
  const int src_size = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(smem)), "l"(gmem), "r"(src_size)
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

// The same unpacking into the HIGH nibble of each byte: bytes hold 16*q (exact int8 for q in -8..7), with
// no sign extension (the nibble's sign bit lands on the byte's). A product of two such operands is 256x
// the INT4 product; with 128-deep groups |sum| <= 2^21 (the magic-number conversion's 2^22 still holds)
// and the 1/256 is folded into a scale, exactly (a power of two).
// _split: 3 ops per 8 values, lo = 16 * elements 0,2,4,6 and hi = 16 * elements 1,3,5,7. A GEMM that
// unpacks both operands with it permutes k the same way on both sides, which a dot product does not see
// (the warp-specialized W4A4 GEMM).
__device__ __forceinline__ void unpack_int4x8_x16_split(uint32_t w, uint32_t& lo, uint32_t& hi) {
  lo = (w << 4) & 0xF0F0F0F0u;
  hi = w & 0xF0F0F0F0u;
}
// In element order (5 ops instead of unpack_int4x8's 11): lo = 16 * elements 0..3, hi = 16 * 4..7.
__device__ __forceinline__ void unpack_int4x8_x16(uint32_t w, uint32_t& lo, uint32_t& hi) {
  uint32_t even, odd;
  unpack_int4x8_x16_split(w, even, odd);
  lo = __byte_perm(even, odd, 0x5140);
  hi = __byte_perm(even, odd, 0x7362);
}

// ---------------------------------------------------------------------------------------------------
// wgmma (sm_90a). Shared-memory matrix descriptor (PTX ISA "Matrix Descriptor Format"):
//   bits  0..13  start address >> 4        bits 16..29  leading-dimension byte offset (LBO) >> 4
//   bits 32..45  stride byte offset (SBO) >> 4     bits 49..51  base offset (0 here)
//   bits 62..63  layout / swizzle mode: 0 = none ("interleave"), 1 = 128B, 2 = 64B, 3 = 32B
// Canonical K-major layout without swizzle (what the Atom wgmma GEMM writes): the tile is made of
// "core matrices" of 8 rows x 16 bytes (16 int8 K-elements), each stored contiguously (row i of the
// core matrix at byte 16*i). For K-major operands
//   LBO = byte distance between the two core matrices adjacent along K (one k32 step of 8-bit data
//         spans 2 of them),
//   SBO = byte distance between core matrices adjacent along M (or N), i.e. the next 8 rows.
enum class WgmmaSwizzle : uint64_t { kNone = 0, k128B = 1, k64B = 2, k32B = 3 };

__device__ __forceinline__ uint64_t wgmma_desc(uint32_t smem_byte_addr, uint32_t lbo_bytes, uint32_t sbo_bytes,
                                               WgmmaSwizzle swz = WgmmaSwizzle::kNone) {
  uint64_t d = 0;
  d |= uint64_t((smem_byte_addr >> 4) & 0x3FFFu);
  d |= uint64_t((lbo_bytes >> 4) & 0x3FFFu) << 16;
  d |= uint64_t((sbo_bytes >> 4) & 0x3FFFu) << 32;
  d |= uint64_t(swz) << 62;
  return d;
}
// K-major, no swizzle, core matrices stored K-fastest: core matrix (row group rg, k-chunk kc) at
// byte (rg * kc_per_row + kc) * 128. Then LBO = 128 and SBO = kc_per_row * 128.
__device__ __forceinline__ uint64_t wgmma_desc_kmajor_noswizzle(const void* smem, int kc_per_row) {
  return wgmma_desc(smem_addr(smem), 128u, uint32_t(kc_per_row) * 128u, WgmmaSwizzle::kNone);
}

// K-major with the 128B swizzle (rows of 128 bytes, 8-row atoms of 1024 bytes, sw128_off): SBO = 1024, LBO
// unused (one k32 step of 8-bit data stays inside a row). The k-steps of a row are start + 32, 64, 96 bytes.
__device__ __forceinline__ uint64_t wgmma_desc_kmajor_sw128(const void* smem) {
  return wgmma_desc(smem_addr(smem), 16u, 1024u, WgmmaSwizzle::k128B);
}

// The descriptor of the operand `bytes` further on in shared memory (the start-address field cannot carry:
// shared memory ends below 256 KB). One add instead of rebuilding the descriptor per wgmma.
__device__ __forceinline__ uint64_t wgmma_desc_add(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

// Must precede the first wgmma of a warpgroup after its accumulator registers (or the shared
// operands) were touched by other instructions.
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Keeps the compiler from moving accumulator reads/writes across wgmma issue / wait points.
template <int R>
__device__ __forceinline__ void wgmma_fence_operands(int32_t (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// The accumulator operands of the s32 wgmma wrappers below: the register list of the instruction text
// ("{%0, ..., %N-1}") and the matching "+r" constraints of d[0..N-1].
#define ATOM_WGMMA_D32_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define ATOM_WGMMA_D64_REGS "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
#define ATOM_WGMMA_D32_OUT(d)                                                                                   \
  "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3]), "+r"(d[4]), "+r"(d[5]), "+r"(d[6]), "+r"(d[7]), "+r"(d[8]),   \
      "+r"(d[9]), "+r"(d[10]), "+r"(d[11]), "+r"(d[12]), "+r"(d[13]), "+r"(d[14]), "+r"(d[15]), "+r"(d[16]),     \
      "+r"(d[17]), "+r"(d[18]), "+r"(d[19]), "+r"(d[20]), "+r"(d[21]), "+r"(d[22]), "+r"(d[23]), "+r"(d[24]),    \
      "+r"(d[25]), "+r"(d[26]), "+r"(d[27]), "+r"(d[28]), "+r"(d[29]), "+r"(d[30]), "+r"(d[31])
#define ATOM_WGMMA_D64_OUT(d)                                                                                   \
  ATOM_WGMMA_D32_OUT(d), "+r"(d[32]), "+r"(d[33]), "+r"(d[34]), "+r"(d[35]), "+r"(d[36]), "+r"(d[37]),          \
      "+r"(d[38]), "+r"(d[39]), "+r"(d[40]), "+r"(d[41]), "+r"(d[42]), "+r"(d[43]), "+r"(d[44]), "+r"(d[45]),    \
      "+r"(d[46]), "+r"(d[47]), "+r"(d[48]), "+r"(d[49]), "+r"(d[50]), "+r"(d[51]), "+r"(d[52]), "+r"(d[53]),    \
      "+r"(d[54]), "+r"(d[55]), "+r"(d[56]), "+r"(d[57]), "+r"(d[58]), "+r"(d[59]), "+r"(d[60]), "+r"(d[61]),    \
      "+r"(d[62]), "+r"(d[63])

// D(64x128, s32) (+)= A(64x32, s8, K-major smem) * B(32x128, s8, K-major smem = [N][K] rows).
// scale_d == 0: D = A*B (accumulator ignored), else D += A*B. Issued by a whole warpgroup.
// Accumulator layout (warp w of the warpgroup, lane: g = lane/4, t = lane%4):
//   d[4*j + e]: row 16*w + g + 8*(e/2), column 8*j + 2*t + (e%2),  j = 0..15, e = 0..3
__device__ __forceinline__ void wgmma_m64n128k32_s8(int32_t (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
      ATOM_WGMMA_D64_REGS ", %64, %65, p;\n"
      "}\n"
      : ATOM_WGMMA_D64_OUT(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// D(64x64, s32) (+)= A(64x32, s8) * B(32x64, s8); same conventions and accumulator layout as above (j = 0..7).
__device__ __forceinline__ void wgmma_m64n64k32_s8(int32_t (&d)[32], uint64_t desc_a, uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 "
      ATOM_WGMMA_D32_REGS ", %32, %33, p;\n"
      "}\n"
      : ATOM_WGMMA_D32_OUT(d)
      : "l"(desc_a), "l"(desc_b), "r"(scale_d));
}

// D(64x128, s32) (+)= A(64x32, s8, registers) * B(32x128, s8, K-major smem). A fragment of warp w of
// the warpgroup (rows 16w..16w+15), g = lane/4, t = lane%4, exactly mma.m16n8k32's A fragment:
//   a[0]: A[16w+g][4t..4t+3]  a[1]: A[16w+g+8][4t..]  a[2]: A[16w+g][16+4t..]  a[3]: A[16w+g+8][16+4t..]
// The A registers are read asynchronously: they must not change until the wgmma is waited for.
__device__ __forceinline__ void wgmma_m64n128k32_s8_rs(int32_t (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                       int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k32.s32.s8.s8 "
      ATOM_WGMMA_D64_REGS ", {%64, %65, %66, %67}, %68, p;\n"
      "}\n"
      : ATOM_WGMMA_D64_OUT(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// The same for a 64-column half (accumulator layout as above, j = 0..7).
__device__ __forceinline__ void wgmma_m64n64k32_s8_rs(int32_t (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                      int scale_d) {
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 "
      ATOM_WGMMA_D32_REGS ", {%32, %33, %34, %35}, %36, p;\n"
      "}\n"
      : ATOM_WGMMA_D32_OUT(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// fp16 wgmma with fp32 accumulators and A in registers (the prefill attention's S = Q.K^T and O += P.V).
// A fragment of warp w (rows 16w..16w+15), g = lane/4, t = lane%4, two halves per register, exactly
// mma.m16n8k16's A fragment: a[0]: A[16w+g][2t,2t+1]  a[1]: A[16w+g+8][2t,2t+1]  a[2]: A[16w+g][8+2t,..]
// a[3]: A[16w+g+8][8+2t,..]. B from a K-major no-swizzle descriptor (16 halves of K = 32 bytes = 2 core
// matrices, as the s8 k32 step). Accumulator: d[4*j + e] = D[16w + g + 8*(e/2)][8*j + 2t + (e%2)].
// Immediates: scale-a = scale-b = 1, B not transposed.
template <int R>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
#define ATOM_WGMMA_F32_OUT32(d)                                                                                 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),   \
      "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),     \
      "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),    \
      "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define ATOM_WGMMA_F32_OUT64(d)                                                                                 \
  ATOM_WGMMA_F32_OUT32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]),        \
      "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]),    \
      "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]),    \
      "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]),    \
      "+f"(d[62]), "+f"(d[63])

// D(64x64, f32) (+)= A(64x16, f16, registers) * B(16x64, f16, smem). kTransB = 0: B K-major; 1: B N-major
// (transposed: the 16-bit types' imm-trans-b, an N-fastest tile read as is).
template <int kTransB = 0>
__device__ __forceinline__ void wgmma_m64n64k16_f16_rs(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b,
                                                       int scale_d) {
  static_assert(kTransB == 0 || kTransB == 1);
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      ATOM_WGMMA_D32_REGS ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n"
      "}\n"
      : ATOM_WGMMA_F32_OUT32(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
}

// D(64x128, f32) (+)= A(64x16, f16, registers) * B(16x128, f16, smem); kTransB as above.
template <int kTransB = 0>
__device__ __forceinline__ void wgmma_m64n128k16_f16_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                        int scale_d) {
  static_assert(kTransB == 0 || kTransB == 1);
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      ATOM_WGMMA_D64_REGS ", {%64, %65, %66, %67}, %68, p, 1, 1, %70;\n"
      "}\n"
      : ATOM_WGMMA_F32_OUT64(d)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(kTransB));
}

// ---------------------------------------------------------------------------------------------------
// mbarrier (shared-memory transaction barrier) and register reallocation, for warp-specialized
// producer/consumer pipelines. A barrier completes a phase when `count` arrivals have happened; a
// waiter passes once the phase with the given parity has completed (a fresh barrier is in phase 0, so
// waiting for parity 1 -- "the phase before" -- passes at once: the producer's first lap over a ring).
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
}
// Release-arrive: this thread's earlier shared-memory writes are visible to threads that then pass a wait.
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(smem_addr(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  asm volatile(
      "{\n"
      ".reg .pred done;\n"
      "WAIT_%=:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_%=;\n"
      "}\n" ::"r"(smem_addr(bar)),
      "r"(parity)
      : "memory");
}
// Arrives (as one of the barrier's `count`) and raises the phase's expected transaction bytes by `bytes`:
// the phase completes once the arrivals are in and the TMA copies signalling it have written that many bytes.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(smem_addr(bar)),
               "r"(bytes)
               : "memory");
}

// ---------------------------------------------------------------------------------------------------
// TMA (sm_90): the bulk tensor copy engine. `tmap` is the generic address of a CUtensorMap passed as a
// __grid_constant__ kernel parameter (host: tma.h). Box coordinates are in elements, innermost first; rows
// outside the tensor are zero-filled (and still count toward the barrier's transaction bytes).
__device__ __forceinline__ void tma_load_2d(void* smem_dst, const void* tmap, int c0, int c1, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(smem_dst)),
      "l"(reinterpret_cast<uint64_t>(tmap)), "r"(c0), "r"(c1), "r"(smem_addr(bar))
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const void* tmap) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(tmap)) : "memory");
}
// Byte offset of 16-byte chunk c of row r in a tile of 64-byte rows written with CU_TENSOR_MAP_SWIZZLE_64B
// (chunk bits 4..5 XOR address bits 7..8), and of 128-byte rows with SWIZZLE_128B (bits 4..6 XOR 7..9). The
// tile base must be 1024-byte aligned (the pattern is one of absolute shared-memory addresses).
__device__ __forceinline__ int sw64_off(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }
__device__ __forceinline__ int sw128_off(int r, int c) { return r * 128 + ((c ^ (r & 7)) << 4); }

// Barrier among `threads` threads (a multiple of 32) of the CTA; id 0 is __syncthreads' own.
__device__ __forceinline__ void named_bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Arrive on named barrier `id` without waiting (the producer side of a turn-taking handshake).
__device__ __forceinline__ void named_bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
// Hand registers back (producer warps) / take them (consumer warps); all warps of a warpgroup execute it.
template <int N>
__device__ __forceinline__ void setmaxnreg_dec() { asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N)); }
template <int N>
__device__ __forceinline__ void setmaxnreg_inc() { asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N)); }
// setmaxnreg.inc blocks until the CTA's pool holds what it asks, and the pool is what the launch allocated:
// 65536 / threads registers per thread rounded down to 8 (168 for 384 threads at one CTA per SM, which ptxas
// gives a setmaxnreg kernel). A split of one 128-thread producer warpgroup and the consumer warpgroups that asks
// more hangs the consumers at their first instruction.
constexpr bool register_split_fits(int threads, int producer_regs, int consumer_regs) {
  return 128 * producer_regs + (threads - 128) * consumer_regs <= threads * (65536 / threads / 8 * 8);
}


// ---------------------------------------------------------------------------------------------------
// fp16 tensor-core MMA and ldmatrix (paged attention, issue 5).
// D(16x8, f32) += A(16x16, f16, row) * B(16x8, f16, col). Fragment layout (g = lane/4, t = lane%4), each
// 32-bit register a pair of halves, the lower-indexed element in the low 16 bits:
//   a0a1: A[g][2t,2t+1]  a2a3: A[g+8][2t,2t+1]  a4a5: A[g][2t+8,2t+9]  a6a7: A[g+8][2t+8,2t+9]
//   b0b1: B[2t,2t+1][g]  b2b3: B[2t+8,2t+9][g]
//   c0,c1: C[g][2t,2t+1]  c2,c3: C[g+8][2t,2t+1]
__device__ __forceinline__ void mma_f16_16816(float (&c)[4], uint32_t a01, uint32_t a23, uint32_t a45, uint32_t a67,
                                              uint32_t b01, uint32_t b23) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a01), "r"(a23), "r"(a45), "r"(a67), "r"(b01), "r"(b23));
}

// Four 8x8 b16 matrices from shared memory; lanes 8i..8i+7 give the row addresses of matrix i, and
// register i receives matrix i in mma fragment order (thread l: row l/4, columns 2(l%4), 2(l%4)+1).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem_row)));
}
// The same, transposed: thread l receives rows 2(l%4), 2(l%4)+1 of column l/4.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem_row)));
}

}  // namespace atom::cuda::ptx
