// Prefill / chunked-prefill attention over the paged cache: flash-attention (FA2 style) on mma.sync
// m16n8k16 f16 with fp32 accumulation.
//
// Grid (query tile of 64 rows, sequence, query head); 4 warps, 16 query rows each. Query row i of
// sequence b sits at position seq_len - n_q + i and sees keys 0..position (the cached prefix plus the
// causal part of the new chunk). Per 64-key tile the CTA gathers K and V rows through the block table,
// dequantizes int8/int4 to fp16 in shared memory ((q - zero) exact in fp16, times the fp16 scale:
// one rounding, as an fp16 cache would hold it), then QK^T from ldmatrix fragments, online softmax in
// registers (the score C layout is the A layout of P.V), and P.V with ldmatrix.trans fragments of V.
#include <cuda_fp16.h>

#include <algorithm>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/attention_prefill.cuh"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {

constexpr int kBM = 64, kBN = kTileMetaKeys, kThreads = 128;

template <int D>
constexpr int smem_stride() { return D + 8; }  // halves; +16 B per row keeps ldmatrix conflict-free
// Shared memory: K/V tiles stream through two cp.async stages, so tile kt+1 loads while tile kt
// computes. fp16 caches: a stage is the padded fp16 K and V tiles themselves. int caches: a stage holds
// the raw bytes ([64][row] K, [64][row] V, then per token K scales, V scales (fp16), K zeros, V zeros),
// dequantized into one padded fp16 K/V pair before the tile's math. The Q tile is staged in space a
// K/V tile takes later (its fragments live in registers after the first barrier).
template <KvDtype DT, int D>
struct PrefillSmem {
  static constexpr int kBits = DT == KvDtype::F16 ? 16 : DT == KvDtype::I8 ? 8 : 4;
  static constexpr int kRowBytes = D * kBits / 8;
  static constexpr size_t kTile = size_t(kBN) * smem_stride<D>() * sizeof(__half);  // one padded fp16 tile
  static constexpr size_t kRawVals = size_t(kBN) * kRowBytes;
  static constexpr size_t kStage = DT == KvDtype::F16 ? 2 * kTile : 2 * kRawVals + size_t(kTileMetaBytes);
  static constexpr size_t kBytes = 2 * kStage + (DT == KvDtype::F16 ? 0 : 2 * kTile);
};

// cp.async of key tile kt (tokens kt*64 ..) into a stage; tokens >= kend are zero-filled (not read).
// A thread copies chunk tid % kRowChunks of rows tid / kRowChunks + k * kRowsPerPass, K and V of the
// same token from one block-table lookup (per chunk, the lookup, a division by the page size and the
// 64-bit block_offset chain were most of the kernel's instructions).
template <KvDtype DT, int D>
__device__ __forceinline__ void issue_tile(uint8_t* stage, const PrefillArgs& a, const HeadPages& hp, const int32_t* bt,
                                           int kt, int kend, int tid) {
  using SM = PrefillSmem<DT, D>;
  constexpr int kRowChunks = SM::kRowBytes / 16;
  static_assert(kThreads % kRowChunks == 0 && (kBN * kRowChunks) % kThreads == 0, "tile chunks must split evenly");
  constexpr int kRowsPerPass = kThreads / kRowChunks;
  const int ch = tid % kRowChunks;
  const int64_t v_minus_k = a.L.v_values() - a.L.k_values();
#pragma unroll
  for (int k = 0; k < kBN / kRowsPerPass; ++k) {
    const int r = tid / kRowChunks + k * kRowsPerPass;
    const int t = kt * kBN + r;
    const bool valid = t < kend;
    const uint8_t* src = valid ? hp.block(bt[t >> hp.shift]) + a.L.k_values() +
                                     int64_t(t & hp.mask) * SM::kRowBytes + 16 * ch
                               : a.pool;
    uint8_t* dk = DT == KvDtype::F16 ? stage + size_t(r) * smem_stride<D>() * 2 + 16 * ch
                                     : stage + size_t(r) * SM::kRowBytes + 16 * ch;
    uint8_t* dv = dk + (DT == KvDtype::F16 ? SM::kTile : SM::kRawVals);
    ptx::cp_async_16(dk, src, valid);
    ptx::cp_async_16(dv, valid ? src + v_minus_k : a.pool, valid);
  }
  if constexpr (DT != KvDtype::F16) issue_tile_meta(stage + 2 * SM::kRawVals, a, hp, bt, kt, kend, tid);
}

template <KvDtype DT, int D>
__global__ void __launch_bounds__(kThreads, 3) prefill_kernel(const PrefillArgs a) {
  constexpr int S = smem_stride<D>();
  constexpr int kBits = DT == KvDtype::F16 ? 16 : DT == KvDtype::I8 ? 8 : 4;
  constexpr int kRowBytes = D * kBits / 8;
  constexpr int kChunks = kRowBytes / 16;        // 16-byte chunks per stored row
  constexpr int kChunkElems = 128 / kBits;       // elements per chunk
  constexpr int kNKB = D / 16, kNT = D / 8;
  using SM = PrefillSmem<DT, D>;
  extern __shared__ __align__(16) uint8_t smem[];
  auto stage = [&](int i) { return smem + (i % 2) * SM::kStage; };  // no array: a run-time index would go to local memory
  // int: the dequantized tiles after the stages; fp16: the tiles are the stages themselves.
  __half* dqK = reinterpret_cast<__half*>(smem + 2 * SM::kStage);
  __half* dqV = reinterpret_cast<__half*>(smem + 2 * SM::kStage + SM::kTile);
  __half* sQ = DT == KvDtype::F16 ? reinterpret_cast<__half*>(stage(1)) : dqK;

  const PrefillTile<kBM> qtile(a);
  if (!qtile.active) return;
  const int b = qtile.b, h = qtile.h, hk = qtile.hk, q_begin = qtile.q_begin, row0 = qtile.row0, nrows = qtile.nrows,
            qpos0 = qtile.qpos0, kend = qtile.kend;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane / 4, c = lane % 4;
  const int64_t qstride = int64_t(a.n_heads) * D;

  for (int i = tid; i < kBM * (D / 8); i += kThreads) {
    const int r = i / (D / 8), col = 8 * (i % (D / 8));
    uint4 v = make_uint4(0, 0, 0, 0);
    if (r < nrows) v = *reinterpret_cast<const uint4*>(a.q + (q_begin + row0 + r) * qstride + int64_t(h) * D + col);
    *reinterpret_cast<uint4*>(sQ + r * S + col) = v;
  }
  __syncthreads();
  uint32_t qf[kNKB][4];
#pragma unroll
  for (int kb = 0; kb < kNKB; ++kb) ptx::ldmatrix_x4(qf[kb], sQ + (16 * warp + lane % 16) * S + 16 * kb + 8 * (lane / 16));

  // Positions of this lane's two rows (g, g+8 of the warp); -1 masks every key for padding rows.
  int qpos[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = 16 * warp + g + 8 * i;
    qpos[i] = r < nrows ? qpos0 + r : -1;
  }
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[kNT][4];
#pragma unroll
  for (int j = 0; j < kNT; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

  const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
  const HeadPages hp(a.L, a.pool, a.layer, hk);
  const int n_tiles = (kend + kBN - 1) / kBN;
  if (n_tiles > 0) issue_tile<DT, D>(stage(0), a, hp, bt, 0, kend, tid);
  ptx::cp_async_commit();
  for (int kt = 0; kt < n_tiles; ++kt) {
    ptx::cp_async_wait<0>();
    __syncthreads();  // tile kt landed for every thread; everyone is done with tile kt-1 (and the Q tile)
    if (kt + 1 < n_tiles) issue_tile<DT, D>(stage(kt + 1), a, hp, bt, kt + 1, kend, tid);
    ptx::cp_async_commit();
    const __half* sK;
    const __half* sV;
    if constexpr (DT == KvDtype::F16) {
      sK = reinterpret_cast<const __half*>(stage(kt));
      sV = reinterpret_cast<const __half*>(stage(kt) + SM::kTile);
    } else {
      const uint8_t* raw = stage(kt);
      for (int i = tid; i < 2 * kBN * kChunks; i += kThreads) {
        const int which = i / (kBN * kChunks);  // 0 K, 1 V
        const int r = (i / kChunks) % kBN, ch = i % kChunks;
        __half* dst = (which ? dqV : dqK) + r * S + ch * kChunkElems;
        if (kt * kBN + r < kend) {
          const uint4 x = *reinterpret_cast<const uint4*>(raw + which * SM::kRawVals + r * kRowBytes + 16 * ch);
          uint32_t zz, s2;
          tile_meta_operands(raw + 2 * SM::kRawVals, which, r, zz, s2);
          dequant_chunk<DT>(x, zz, s2, dst);
        } else {  // past the end: zeros (stored garbage may be NaN, and 0 * NaN = NaN)
#pragma unroll
          for (int e = 0; e < kChunkElems; e += 8) *reinterpret_cast<uint4*>(dst + e) = make_uint4(0, 0, 0, 0);
        }
      }
      __syncthreads();
      sK = dqK;
      sV = dqV;
    }

    // ---- S = Q K^T: 16 rows x 64 keys per warp ----
    float sacc[kBN / 8][4];
#pragma unroll
    for (int j = 0; j < kBN / 8; ++j) sacc[j][0] = sacc[j][1] = sacc[j][2] = sacc[j][3] = 0.0f;
#pragma unroll
    for (int j = 0; j < kBN / 8; j += 2) {
#pragma unroll
      for (int kb = 0; kb < kNKB; ++kb) {
        uint32_t kf[4];
        ptx::ldmatrix_x4(kf, sK + (8 * (j + lane / 16) + lane % 8) * S + 16 * kb + 8 * ((lane / 8) % 2));
        ptx::mma_f16_16816(sacc[j], qf[kb][0], qf[kb][1], qf[kb][2], qf[kb][3], kf[0], kf[1]);
        ptx::mma_f16_16816(sacc[j + 1], qf[kb][0], qf[kb][1], qf[kb][2], qf[kb][3], kf[2], kf[3]);
      }
    }
    // ---- causal mask + online softmax (rows g and g+8) ----
    float corr[2];
    // (every tile masked: skipping the mask on the tiles below the diagonal made this kernel spill)
    tile_softmax_step<true, kBN>([&](int j, int e) -> float& { return sacc[j][e]; }, kt, c, qpos, a.scale_log2, m, l,
                                 corr);
#pragma unroll
    for (int j = 0; j < kNT; ++j) {
      o[j][0] *= corr[0]; o[j][1] *= corr[0];
      o[j][2] *= corr[1]; o[j][3] *= corr[1];
    }
    // ---- O += P V ----
#pragma unroll
    for (int kk = 0; kk < kBN / 16; ++kk) {
      const uint32_t a01 = attn::pack_half2(sacc[2 * kk][0], sacc[2 * kk][1]);
      const uint32_t a23 = attn::pack_half2(sacc[2 * kk][2], sacc[2 * kk][3]);
      const uint32_t a45 = attn::pack_half2(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
      const uint32_t a67 = attn::pack_half2(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
#pragma unroll
      for (int j = 0; j < kNT; j += 2) {
        uint32_t vf[4];
        ptx::ldmatrix_x4_trans(vf, sV + (16 * kk + lane % 8 + 8 * ((lane / 8) % 2)) * S + 8 * (j + lane / 16));
        ptx::mma_f16_16816(o[j], a01, a23, a45, a67, vf[0], vf[1]);
        ptx::mma_f16_16816(o[j + 1], a01, a23, a45, a67, vf[2], vf[3]);
      }
    }
  }

  // ---- normalise and store ----
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float L = attn::warp_sum_quad(l[i]);
    const int r = 16 * warp + g + 8 * i;
    if (r >= nrows) continue;
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    __half* dst = a.out + (q_begin + row0 + r) * qstride + int64_t(h) * D + 2 * c;
#pragma unroll
    for (int j = 0; j < kNT; ++j)
      *reinterpret_cast<__half2*>(dst + 8 * j) = __floats2half2_rn(o[j][2 * i] * inv, o[j][2 * i + 1] * inv);
  }
}

template <KvDtype DT, int D>
void launch_prefill(const PrefillArgs& a, int B, int max_q, cudaStream_t s) {
  constexpr size_t smem = PrefillSmem<DT, D>::kBytes;
  allow_dynamic_smem(reinterpret_cast<const void*>(prefill_kernel<DT, D>), smem);
  prefill_kernel<DT, D><<<PrefillTile<kBM>::grid(B, max_q, a.n_heads), kThreads, smem, s>>>(a);
  ATOM_CUDA_CHECK_LAUNCH();
}

}  // namespace

void paged_attention_prefill(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* cu_q,
                             const int32_t* seq_lens, const int32_t* block_tables, int max_blocks, int B, int64_t T,
                             int n_heads, float scale, uint16_t* out, cudaStream_t s, int max_q_per_seq,
                             PrefillKernel kernel) {
  const PagedKvLayout L = kv.layout();
  check_attention_args(L, layer, max_blocks, B, n_heads);
  ATOM_CUDA_REQUIRE(max_q_per_seq >= 1 && max_q_per_seq <= T, "paged_attention_prefill: need 1 <= max_q_per_seq <= T");
  ATOM_CUDA_REQUIRE(B <= 65535 && n_heads <= 65535, "paged_attention_prefill: B and n_heads must be <= 65535");
  if (B == 0 || T == 0) return;
  PrefillArgs a{};
  a.L = L;
  a.pool = kv.data();
  a.layer = layer;
  a.q = reinterpret_cast<const __half*>(q);
  a.cu_q = cu_q;
  a.seq_lens = seq_lens;
  a.block_tables = block_tables;
  a.max_blocks = max_blocks;
  a.n_heads = n_heads;
  a.group = n_heads / L.n_kv_heads;
  a.scale_log2 = scale * attn::kLog2e;
  a.out = reinterpret_cast<__half*>(out);
  // kAuto on sm_90: the warp-specialized kernel (over the wgmma kernel: fp16 +15-22%, results.md §15e; int4
  // +21-27%, int8 +5-8%, §16a; persistent since §16d: int4 +2-26%, int8 +6-28% over one CTA per tile); the
  // mma.sync kernel elsewhere.
  if (kernel == PrefillKernel::kAuto) kernel = device_runs_sm90a() ? PrefillKernel::kWgmmaWs : PrefillKernel::kMmaSync;
  if (kernel != PrefillKernel::kMmaSync) {  // the wgmma kernels
    ATOM_CUDA_REQUIRE(device_runs_sm90a(), "paged_attention_prefill: the wgmma kernels need an sm_90 device");
    if (kernel == PrefillKernel::kWgmmaWs || kernel == PrefillKernel::kWgmmaWsTma)
      launch_prefill_ws(a, B, max_q_per_seq, kernel == PrefillKernel::kWgmmaWsTma, s);
    else launch_prefill_wgmma(a, B, max_q_per_seq, s);
    return;
  }
  with_kv_shape(L.dtype, L.head_dim, [&](auto dt, auto d) {
    launch_prefill<decltype(dt)::value, decltype(d)::value>(a, B, max_q_per_seq, s);
  });
}

}  // namespace atom::cuda
