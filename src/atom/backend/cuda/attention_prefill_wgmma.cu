// Prefill / chunked-prefill attention on wgmma (sm_90a): the same contract as the mma.sync kernel of
// attention_prefill.cu (PrefillKernel::kWgmma selects it), written to lift the FA2-style kernel's ceiling
// (ldmatrix traffic at 16 query rows per warp, mma.sync's half rate; docs/results.md §6d).
//
// CTA = 2 warpgroups, 128 query rows of one head (64 per warpgroup), 64-key tiles shared by both.
//   Q        fp16 A fragments in registers for the whole kernel (loaded once from global memory).
//   K tile   shared memory, wgmma's canonical K-major layout without swizzle (8-row x 16-byte core
//            matrices, core (key/8, d/8) at byte ((key/8) * D/8 + d/8) * 128): S = Q.K^T is
//            D/16 wgmma m64n64k16 with K as the B operand, exactly the int8 GEMM's descriptor geometry.
//   V tile   stored transposed, V^T[d][key] in the same layout (core (d/8, key/8)), so O += P.V is
//            64/16 wgmma m64n{D}k16 with B = V^T K-major: no transposed descriptor.
//   P        the S accumulator layout is the A fragment layout of the next product (as in FA2).
// Pipeline: raw K/V bytes of tile kt+2 stream in by cp.async (two raw stages) while tile kt+1 is
// dequantized / transposed into the second pair of wgmma tiles and the wgmma of tile kt run.
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/attention_prefill.cuh"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {

constexpr int kWG = 2;                // warpgroups per CTA
constexpr int kBM = 64 * kWG;         // query rows per CTA
constexpr int kBN = kTileMetaKeys;    // keys per tile
constexpr int kThreads = 128 * kWG;

template <KvDtype DT, int D>
struct WgSmem {
  static constexpr int kBits = DT == KvDtype::F16 ? 16 : DT == KvDtype::I8 ? 8 : 4;
  static constexpr int kRowBytes = D * kBits / 8;
  static constexpr int kChunks = kRowBytes / 16;           // 16-byte chunks per stored row
  static constexpr int kChunkElems = 128 / kBits;           // elements per chunk
  static constexpr size_t kRawVals = size_t(kBN) * kRowBytes;
  static constexpr size_t kMeta = DT == KvDtype::F16 ? 0 : size_t(kTileMetaBytes);  // issue_tile_meta's layout
  static constexpr size_t kRaw = 2 * kRawVals + kMeta;      // one raw stage: K rows, V rows, metadata
  static constexpr size_t kTile = size_t(kBN) * D * 2;      // one fp16 wgmma tile (K or V^T)
  static constexpr size_t kBytes = 2 * kRaw + 4 * kTile;    // 2 raw stages + 2 x (K, V^T)
};

// Byte offset of element (row, col) in a canonical K-major tile whose rows have `cols` elements.
__device__ __forceinline__ uint32_t canon(int row, int col, int cols) {
  return uint32_t(((row >> 3) * (cols >> 3) + (col >> 3)) * 128 + (row & 7) * 16 + (col & 7) * 2);
}

// cp.async of the raw bytes of key tile kt into a raw stage; tokens >= kend are zero-filled (never read).
template <KvDtype DT, int D>
__device__ __forceinline__ void issue_raw(uint8_t* raw, const PrefillArgs& a, const HeadPages& hp, const int32_t* bt,
                                          int kt, int kend, int tid) {
  using SM = WgSmem<DT, D>;
  constexpr int kItems = kBN * SM::kChunks;
  const int32_t k_off = int32_t(a.L.k_values()), v_off = int32_t(a.L.v_values());
  for (int i = tid; i < kItems; i += kThreads) {
    const int r = i / SM::kChunks, ch = i % SM::kChunks;
    const int t = kt * kBN + r;
    const bool valid = t < kend;
    const uint8_t* blk = valid ? hp.block(bt[t >> hp.shift]) : a.pool;
    const int32_t row = (t & hp.mask) * SM::kRowBytes + 16 * ch;
    ptx::cp_async_16(raw + r * SM::kRowBytes + 16 * ch, valid ? blk + k_off + row : a.pool, valid);
    ptx::cp_async_16(raw + SM::kRawVals + r * SM::kRowBytes + 16 * ch, valid ? blk + v_off + row : a.pool, valid);
  }
  if constexpr (DT != KvDtype::F16) issue_tile_meta(raw + 2 * SM::kRawVals, a, hp, bt, kt, kend, tid);
}

// The raw chunk ch of key r's K (which = 0) or V (1) row as fp16 pieces; zeros past the end (stored garbage
// may be NaN, and 0 * NaN = NaN even where P is 0).
template <KvDtype DT, int D>
__device__ __forceinline__ void chunk_pieces(const uint8_t* raw, int which, int r, int ch, bool valid,
                                             uint4 (&out)[kChunkPieces<DT>]) {
  using SM = WgSmem<DT, D>;
  if (!valid) {
#pragma unroll
    for (int p = 0; p < kChunkPieces<DT>; ++p) out[p] = make_uint4(0, 0, 0, 0);
    return;
  }
  const uint4 x = *reinterpret_cast<const uint4*>(raw + which * SM::kRawVals + r * SM::kRowBytes + 16 * ch);
  uint32_t zz = 0, s2 = 0;
  if constexpr (DT != KvDtype::F16) tile_meta_operands(raw + 2 * SM::kRawVals, which, r, zz, s2);
  dequant_pieces<DT>(x, zz, s2, out);
}

// Raw stage -> the wgmma tiles: K in the canonical layout (one 16-byte store per 8 elements), V transposed
// (a thread takes two adjacent keys, so each store is one 4-byte (key, key+1) pair).
template <KvDtype DT, int D>
__device__ __forceinline__ void convert_tile(const uint8_t* raw, uint8_t* sK, uint8_t* sVt, int kt, int kend, int tid) {
  using SM = WgSmem<DT, D>;
  constexpr int P = kChunkPieces<DT>;
  for (int i = tid; i < kBN * SM::kChunks; i += kThreads) {
    const int r = i / SM::kChunks, ch = i % SM::kChunks;
    uint4 pc[P];
    chunk_pieces<DT, D>(raw, 0, r, ch, kt * kBN + r < kend, pc);
#pragma unroll
    for (int p = 0; p < P; ++p) *reinterpret_cast<uint4*>(sK + canon(r, ch * SM::kChunkElems + 8 * p, D)) = pc[p];
  }
  for (int i = tid; i < (kBN / 2) * SM::kChunks; i += kThreads) {
    const int r0 = 2 * (i / SM::kChunks), ch = i % SM::kChunks;
    uint4 p0[P], p1[P];
    chunk_pieces<DT, D>(raw, 1, r0, ch, kt * kBN + r0 < kend, p0);
    chunk_pieces<DT, D>(raw, 1, r0 + 1, ch, kt * kBN + r0 + 1 < kend, p1);
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const int d0 = ch * SM::kChunkElems + 8 * p;
      const uint32_t w0[4] = {p0[p].x, p0[p].y, p0[p].z, p0[p].w}, w1[4] = {p1[p].x, p1[p].y, p1[p].z, p1[p].w};
#pragma unroll
      for (int e = 0; e < 8; ++e)
        *reinterpret_cast<uint32_t*>(sVt + canon(d0 + e, r0, kBN)) = __byte_perm(w0[e / 2], w1[e / 2], e % 2 ? 0x7632 : 0x5410);
    }
  }
}

template <KvDtype DT, int D>
__global__ void __launch_bounds__(kThreads, 1) prefill_wgmma_kernel(const PrefillArgs a) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using SM = WgSmem<DT, D>;
  constexpr int kNKB = D / 16;  // k16 steps of S = Q.K^T
  constexpr int kNT = D / 8;    // n8 column tiles of O
  extern __shared__ __align__(128) uint8_t smem[];
  uint8_t* const raw0 = smem;
  uint8_t* const tiles = smem + 2 * SM::kRaw;  // K0, Vt0, K1, Vt1
  auto raw = [&](int i) { return raw0 + (i & 1) * SM::kRaw; };
  auto tileK = [&](int i) { return tiles + (i & 1) * 2 * SM::kTile; };
  auto tileVt = [&](int i) { return tiles + (i & 1) * 2 * SM::kTile + SM::kTile; };

  // Heaviest (latest) query tiles first: causal work grows with the tile index.
  const int qt = gridDim.x - 1 - blockIdx.x, b = blockIdx.y, h = blockIdx.z, hk = h / a.group;
  const int q_begin = a.cu_q[b], nq = a.cu_q[b + 1] - q_begin;
  const int row0 = qt * kBM;
  if (row0 >= nq) return;
  const int len = a.seq_lens[b];
  const int nrows = min(kBM, nq - row0);
  const int qpos0 = len - nq + row0;
  const int kend = min(len, qpos0 + nrows);
  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32, g = lane / 4, c = lane % 4;
  const int64_t qstride = int64_t(a.n_heads) * D;
  const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
  const HeadPages hp(a.L, a.pool, a.layer, hk);
  const int n_tiles = (kend + kBN - 1) / kBN;

  // Raw tiles 0 and 1 in flight while Q is loaded.
  if (n_tiles > 0) issue_raw<DT, D>(raw(0), a, hp, bt, 0, kend, tid);
  ptx::cp_async_commit();
  if (n_tiles > 1) issue_raw<DT, D>(raw(1), a, hp, bt, 1, kend, tid);
  ptx::cp_async_commit();

  // This lane's two query rows (g, g+8 of its warp) and their A fragments; -1 masks every key for padding.
  int qpos[2];
  uint32_t qf[kNKB][4];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = 64 * wg + 16 * warp + g + 8 * i;
    qpos[i] = r < nrows ? qpos0 + r : -1;
    const __half* qr = a.q + (q_begin + row0 + min(r, nrows - 1)) * qstride + int64_t(h) * D + 2 * c;
#pragma unroll
    for (int kb = 0; kb < kNKB; ++kb) {
      qf[kb][i] = r < nrows ? *reinterpret_cast<const uint32_t*>(qr + 16 * kb) : 0u;
      qf[kb][2 + i] = r < nrows ? *reinterpret_cast<const uint32_t*>(qr + 16 * kb + 8) : 0u;
    }
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[4 * kNT];
#pragma unroll
  for (int i = 0; i < 4 * kNT; ++i) o[i] = 0.0f;

  if (n_tiles > 0) {
    ptx::cp_async_wait<1>();  // raw tile 0
    __syncthreads();
    convert_tile<DT, D>(raw(0), tileK(0), tileVt(0), 0, kend, tid);
    ptx::fence_proxy_async_shared();
    __syncthreads();
  }
  for (int kt = 0; kt < n_tiles; ++kt) {
    // ---- S = Q K^T (64 rows x 64 keys per warpgroup), issued asynchronously ----
    float s[32];
#pragma unroll
    for (int i = 0; i < 32; ++i) s[i] = 0.0f;  // (scale-d = 0 ignores them; defined for the asm's "+f")
    const uint64_t dk = ptx::wgmma_desc_kmajor_noswizzle(tileK(kt), D / 8);
    ptx::wgmma_fence();
#pragma unroll
    for (int kb = 0; kb < kNKB; ++kb) ptx::wgmma_m64n64k16_f16_rs(s, qf[kb], ptx::wgmma_desc_add(dk, 256u * kb), kb > 0);
    ptx::wgmma_commit();
    // ---- meanwhile: tile kt+1 into the other wgmma tiles, tile kt+2's raw bytes into the freed stage ----
    if (kt + 1 < n_tiles) {
      ptx::cp_async_wait<0>();  // raw tile kt+1
      __syncthreads();
      convert_tile<DT, D>(raw(kt + 1), tileK(kt + 1), tileVt(kt + 1), kt + 1, kend, tid);
      ptx::fence_proxy_async_shared();
      __syncthreads();  // tiles kt+1 are written; raw(kt), converted one iteration ago, takes tile kt+2
      if (kt + 2 < n_tiles) issue_raw<DT, D>(raw(kt + 2), a, hp, bt, kt + 2, kend, tid);
      ptx::cp_async_commit();
    }
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(s);
    // ---- causal mask + online softmax (rows g and g+8) ----
    float mloc[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = kt * kBN + 8 * j + 2 * c + (e & 1);
        float v = s[4 * j + e] * a.scale_log2;
        v = key <= qpos[e / 2] ? v : -INFINITY;
        s[4 * j + e] = v;
        mloc[e / 2] = fmaxf(mloc[e / 2], v);
      }
    float corr[2], muse[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const float mnew = fmaxf(m[i], attn::warp_max_quad(mloc[i]));
      muse[i] = mnew == -INFINITY ? 0.0f : mnew;
      corr[i] = attn::exp2_ftz(m[i] - muse[i]);
      m[i] = mnew;
      l[i] *= corr[i];
    }
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[4 * j + e] = attn::exp2_ftz(s[4 * j + e] - muse[e / 2]);
        l[e / 2] += s[4 * j + e];
      }
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
      o[4 * j] *= corr[0]; o[4 * j + 1] *= corr[0];
      o[4 * j + 2] *= corr[1]; o[4 * j + 3] *= corr[1];
    }
    // ---- O += P V^T-tile: P's fragments straight from the S layout ----
    uint32_t pf[kBN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      pf[kk][0] = attn::pack_half2(s[8 * kk + 0], s[8 * kk + 1]);
      pf[kk][1] = attn::pack_half2(s[8 * kk + 2], s[8 * kk + 3]);
      pf[kk][2] = attn::pack_half2(s[8 * kk + 4], s[8 * kk + 5]);
      pf[kk][3] = attn::pack_half2(s[8 * kk + 6], s[8 * kk + 7]);
    }
    const uint64_t dv = ptx::wgmma_desc_kmajor_noswizzle(tileVt(kt), kBN / 8);
    ptx::wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      if constexpr (D == 128) {
        ptx::wgmma_m64n128k16_f16_rs(o, pf[kk], ptx::wgmma_desc_add(dv, 256u * kk), 1);
      } else {
        ptx::wgmma_m64n64k16_f16_rs(o, pf[kk], ptx::wgmma_desc_add(dv, 256u * kk), 1);
      }
    }
    ptx::wgmma_commit();
    ptx::wgmma_wait<0>();
    ptx::wgmma_fence_operands(o);
    __syncthreads();  // both warpgroups are done with tiles kt before tile kt+2 is converted into them
  }

  // ---- normalise and store ----
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float L = attn::warp_sum_quad(l[i]);
    const int r = 64 * wg + 16 * warp + g + 8 * i;
    if (r >= nrows) continue;
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    __half* dst = a.out + (q_begin + row0 + r) * qstride + int64_t(h) * D + 2 * c;
#pragma unroll
    for (int j = 0; j < kNT; ++j)
      *reinterpret_cast<__half2*>(dst + 8 * j) = __floats2half2_rn(o[4 * j + 2 * i] * inv, o[4 * j + 2 * i + 1] * inv);
  }
#else
  __trap();  // built without sm_90a: the host never dispatches here (device_runs_sm90a())
#endif
}

template <KvDtype DT, int D>
void launch(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = WgSmem<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_wgmma_kernel<DT, D>), smem);
  const dim3 grid(unsigned((max_q + kBM - 1) / kBM), unsigned(B), unsigned(a.n_heads));
  prefill_wgmma_kernel<DT, D><<<grid, kThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void launch_prefill_wgmma(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  switch (a.L.dtype) {
    case KvDtype::F16: a.L.head_dim == 128 ? launch<KvDtype::F16, 128>(a, B, max_q, s) : launch<KvDtype::F16, 64>(a, B, max_q, s); break;
    case KvDtype::I8: a.L.head_dim == 128 ? launch<KvDtype::I8, 128>(a, B, max_q, s) : launch<KvDtype::I8, 64>(a, B, max_q, s); break;
    case KvDtype::I4: a.L.head_dim == 128 ? launch<KvDtype::I4, 128>(a, B, max_q, s) : launch<KvDtype::I4, 64>(a, B, max_q, s); break;
  }
}

}  // namespace atom::cuda
