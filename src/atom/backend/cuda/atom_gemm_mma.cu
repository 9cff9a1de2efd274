// W4A4 + INT8-outlier GEMM on mma.sync m16n8k32 s8: configs 0-2 of atom_gemm(), the decode path (M <= 64).
// Layouts: atom_gemm.h. At small M the GEMM is a stream of the weights, so the kernel is shaped for the
// memory system rather than the tensor cores:
//   - a cp.async stage holds KG groups (KG * 64 contiguous bytes of every tile row). One group per stage
//     read 64 bytes per weight row, scattered over as many DRAM pages as rows, and reached 17-36% of HBM.
//   - the stage's fp16 scales travel with it: the 32-bit words covering the row's KG scales (their row
//     start may be odd, KG / 2 + 1 words), so no scale load ever waits at a promotion;
//   - INT4 is unpacked into the high nibble of each byte (ptx::unpack_int4x8_x16_split, 3 operations per
//     8 values) on both operands, which permutes k alike on both (invisible to the dot product); the
//     group sums are 256x and the 1/256 is folded into s_w, exactly;
//   - split-K partial tiles go to an fp32 workspace and the last CTA of a tile sums them in split order
//     and stores the output (a semaphore per tile, reset by that CTA): no memset, no conversion kernel,
//     and the same bits whatever the CTAs' order.
// Per group: facc += fp32(acc) * (s_a * s_w / 256); the INT8 outlier tail (split 0 only) is one more
// promoted term, through the same shared memory.
#include <cuda_fp16.h>

#include "atom/backend/cuda/atom_gemm_common.cuh"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/ptx.cuh"

namespace atom::cuda::gemm_detail {
namespace {

// BM x BN tile, WM x WN warps, S stages of KG groups; MINB: CTAs per SM the registers must allow.
// TILED (timing diagnostic, wrong results): read B as if the weights were stored in 64-row blocks, each
// group's 64 x 64 bytes contiguous ([N/64][G][64][64]), so a stage is one contiguous run: does DRAM
// locality (256-byte runs per row here) bound the decode path?
// SWAP: the weights are the MMA's A operand (BM weight rows per tile, along blockIdx.x) and the activations
// its B operand (BN tokens per tile, along blockIdx.y): m16n8k32 then wastes no rows at M <= 8, a warp's
// 16 weight rows share one activation fragment, and half as many accumulators are promoted per weight.
template <int BM_, int BN_, int WM_, int WN_, int S_, int KG_, int MINB_, bool TILED_ = false, bool SWAP_ = false>
struct MmaCfg {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, S = S_, KG = KG_, kMinBlocks = MINB_;
  static constexpr bool kTiled = TILED_, kSwap = SWAP_;
  static constexpr int kThreads = 32 * WM * WN;
  static constexpr int TM = BM / WM, TN = BN / WN, MT = TM / 16, NT = TN / 8;
  // One stage row: KG groups + 16 pad bytes. The fragment reads (row gq, word t) then hit 32 distinct
  // banks for any KG (the row stride is 4 (mod 32) words for even KG, 20 for KG = 1).
  static constexpr int kRowBytes = KG * 64 + 16;
  static constexpr int kScaleWords = KG / 2 + 1;
  static constexpr int kTileBytes = (BM + BN) * kRowBytes;
  static constexpr int kScaleBytes = (BM + BN) * kScaleWords * 4;
  static constexpr int kSmem = S * (kTileBytes + kScaleBytes);
  static_assert(TM % 16 == 0 && TN % 8 == 0);
  static_assert(BM * kQ8Stride <= S * BM * kRowBytes && BN * kQ8Stride <= S * BN * kRowBytes);
};

// The cp.async pieces of one operand's tile rows [row0, row0 + kRows) that this thread copies per stage:
// 16-byte pieces of the KG groups (zero-filled past the operand's rows or past the CTA's last group), and
// the 32-bit words holding each row's KG fp16 scales (zero-filled past the scale array's last word; the
// words past the row's last group are never read).
template <int kRows, int kThreads, int KG, int kRowBytes, int kScaleWords, bool kTiled = false>
struct StagePieces {
  static constexpr int kPerRow = 4 * KG;
  static constexpr int kIt = (kRows * kPerRow + kThreads - 1) / kThreads;
  static constexpr int kSIt = (kRows * kScaleWords + kThreads - 1) / kThreads;
  const uint8_t* src[kIt];
  int dst[kIt], grp[kIt];
  bool ok[kIt], live[kIt];
  const uint32_t* words;    // the scale array as 32-bit words
  int64_t n_words;          // words holding the whole array
  int64_t s_first[kSIt];    // row * G: the row's first scale, in halves
  int s_piece[kSIt];        // which of the row's kScaleWords words
  bool s_live[kSIt];

  __device__ __forceinline__ StagePieces(const uint8_t* base, const __half* scales, int row0, int rows, int G,
                                         int tid) {
    const int64_t rb = int64_t(G) * 64;
#pragma unroll
    for (int it = 0; it < kIt; ++it) {
      const int i = tid + it * kThreads;
      const int r = kTiled ? (i / 4) % kRows : i / kPerRow, c = kTiled ? (i / (4 * kRows)) * 4 + i % 4 : i % kPerRow;
      live[it] = i < kRows * kPerRow;
      ok[it] = row0 + r < rows;
      if constexpr (kTiled)
        src[it] = base + (ok[it] ? int64_t((row0 + r) >> 6) * rb * 64 + ((row0 + r) & 63) * 64 : 0) + (c / 4) * 4096 +
                  (c % 4) * 16;
      else
        src[it] = base + (ok[it] ? (row0 + r) * rb : 0) + c * 16;
      dst[it] = r * kRowBytes + c * 16;
      grp[it] = c / 4;
    }
    words = reinterpret_cast<const uint32_t*>(scales);
    n_words = (int64_t(rows) * G + 1) / 2;
#pragma unroll
    for (int it = 0; it < kSIt; ++it) {
      const int i = tid + it * kThreads, r = i / kScaleWords;
      s_live[it] = i < kRows * kScaleWords && row0 + r < rows;
      s_first[it] = int64_t(row0 + r) * G;
      s_piece[it] = i % kScaleWords;
    }
  }
  // Stage groups [g0, g0 + KG) (those below g_end) into `tiles` ([kRows][kRowBytes]) and `scales_smem`
  // ([kRows][kScaleWords] words).
  __device__ __forceinline__ void issue(uint8_t* tiles, uint8_t* scales_smem, int g0, int g_end) const {
#pragma unroll
    for (int it = 0; it < kIt; ++it)
      if (live[it]) {
        const bool v = ok[it] && g0 + grp[it] < g_end;
        ptx::cp_async_16(tiles + dst[it], v ? src[it] + g0 * (kTiled ? 4096 : 64) : src[it], v);
      }
#pragma unroll
    for (int it = 0; it < kSIt; ++it)
      if (tid_has_scale(it)) {
        const int64_t w = ((s_first[it] + g0) >> 1) + s_piece[it];
        const bool v = s_live[it] && w < n_words;
        ptx::cp_async_4(scales_smem + (threadIdx.x + it * kThreads) * 4, v ? words + w : words, v);
      }
  }
  __device__ __forceinline__ static bool tid_has_scale(int it) {
    return int(threadIdx.x) + it * kThreads < kRows * kScaleWords;
  }
};

// Scale of tile row r (of an operand with kScaleWords words per row) for group kg of the stage whose first
// group is g0: the row's words start at half (row * G + g0) & ~1.
template <int kScaleWords>
__device__ __forceinline__ float stage_scale(const uint8_t* scales_smem, int r, int64_t row_first_half, int g0,
                                             int kg) {
  const __half* h = reinterpret_cast<const __half*>(scales_smem + r * kScaleWords * 4);
  return __half2float(h[int((row_first_half + g0) & 1) + kg]);
}

// The kernel's operands: P feeds the A fragments (tile rows [p0, p0 + BM)), Q the B fragments (tile rows
// [q0, q0 + BN)). P = activations and Q = weights, or the other way round with SWAP.
struct Operands {
  const uint8_t *p4, *q4;
  const __half *ps, *qs, *pso, *qso;
  const int8_t *p8, *q8;
  int p_rows, q_rows, p0, q0;
};
template <class C>
__device__ __forceinline__ Operands operands(const Params& p) {
  if constexpr (C::kSwap)
    return {p.w4, p.a4, p.sw, p.sa, p.swo, p.sao, p.w8, p.a8, p.N, p.M, int(blockIdx.x) * C::BM, int(blockIdx.y) * C::BN};
  else
    return {p.a4, p.w4, p.sa, p.sw, p.sao, p.swo, p.a8, p.w8, p.M, p.N, int(blockIdx.y) * C::BM, int(blockIdx.x) * C::BN};
}
// Output index of P row r, Q row c (-1 past the output).
template <class C>
__device__ __forceinline__ int64_t out_index(const Params& p, int r, int c) {
  const int tok = C::kSwap ? c : r, ch = C::kSwap ? r : c;
  return tok < p.M && ch < p.N ? int64_t(tok) * p.N + ch : -1;
}

// facc += fp32(acc) * s_a * s_w (s_w already / 256 for a normal group's 256x sums), psums (tests) the
// true partial sums, acc cleared. (Skipping the fragment rows that lie past M for the whole warp made
// config 0 slower, 76.8 -> 98.8 us on 8192 -> 28672 at M = 1: bench/results/results-h200-2026-12-02-gemm-decode-rowskip.log.)
template <class C>
__device__ __forceinline__ void promote(const Params& p, int32_t (&acc)[C::MT][C::NT][4], float (&facc)[C::MT][C::NT][4],
                                        int m_base, int n_base, int gidx, bool x16, const float (&sa)[C::MT][2],
                                        const float (&sw)[C::NT][2]) {
  // (m, n = the P and Q rows; sa, sw = their scales)
  const int lane = threadIdx.x % 32, gq = lane / 4, t = lane % 4;
  const int Gt = p.G + (p.O > 0 ? 1 : 0);
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float s = sa[i][e / 2] * sw[j][e % 2];  // exact: fp16 x fp16 (x a power of two)
        facc[i][j][e] = fmaf(float(acc[i][j][e]), s, facc[i][j][e]);
        if (p.psums) {
          const int64_t o = out_index<C>(p, m_base + i * 16 + gq + (e / 2) * 8, n_base + j * 8 + 2 * t + (e % 2));
          if (o >= 0) p.psums[o * Gt + gidx] = x16 ? acc[i][j][e] / 256 : acc[i][j][e];
        }
        acc[i][j][e] = 0;
      }
}

template <class C>
__global__ void __launch_bounds__(C::kThreads, C::kMinBlocks) mma_sync_gemm_kernel(const Params p) {
  using Pieces = StagePieces<C::BM, C::kThreads, C::KG, C::kRowBytes, C::kScaleWords>;
  using PiecesB = StagePieces<C::BN, C::kThreads, C::KG, C::kRowBytes, C::kScaleWords, C::kTiled>;
  extern __shared__ __align__(16) uint8_t smem[];
  // stage s: tiles [BM + BN][kRowBytes] (A rows, then B rows) at smem + s * kTileBytes; its scale words
  // [BM + BN][kScaleWords] after all S tiles
  auto tile = [&](int s) { return smem + s * C::kTileBytes; };
  auto scales = [&](int s) { return smem + C::S * C::kTileBytes + s * C::kScaleBytes; };
  constexpr int kBTile = C::BM * C::kRowBytes, kBScales = C::BM * C::kScaleWords * 4;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, gq = lane / 4, t = lane % 4;
  const int wm = warp / C::WN, wn = warp % C::WN;
  const Operands op = operands<C>(p);
  const int m0 = op.p0, n0 = op.q0;
  const int g_begin = blockIdx.z * p.groups_per_split;
  const int g_end = min(p.G, g_begin + p.groups_per_split);
  const int n_stages = max(0, (g_end - g_begin + C::KG - 1) / C::KG);

  const Pieces a_pieces(op.p4, op.ps, m0, op.p_rows, p.G, tid);
  const PiecesB b_pieces(op.q4, op.qs, n0, op.q_rows, p.G, tid);
  auto load_stage = [&](int s, int g0) {
    a_pieces.issue(tile(s), scales(s), g0, g_end);
    b_pieces.issue(tile(s) + kBTile, scales(s) + kBScales, g0, g_end);
  };

  int32_t acc[C::MT][C::NT][4];
  float facc[C::MT][C::NT][4];
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0, facc[i][j][e] = 0.0f;

  const int m_loc = wm * C::TM, n_loc = wn * C::TN;  // this warp's first row / column in the tile
  // parity of the first scale (row * G) of the rows / columns this thread promotes
  int a_par[C::MT][2], b_par[C::NT][2];
#pragma unroll
  for (int i = 0; i < C::MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) a_par[i][h] = ((m0 + m_loc + i * 16 + gq + h * 8) * p.G) & 1;
#pragma unroll
  for (int j = 0; j < C::NT; ++j)
#pragma unroll
    for (int h = 0; h < 2; ++h) b_par[j][h] = ((n0 + n_loc + j * 8 + 2 * t + h) * p.G) & 1;

#pragma unroll
  for (int s = 0; s < C::S - 1; ++s) {
    if (s < n_stages) load_stage(s, g_begin + s * C::KG);
    ptx::cp_async_commit();
  }
  // Stage st lives in slot st % S; the loop is unrolled by S so the slots are compile-time constants.
  for (int st0 = 0; st0 < n_stages; st0 += C::S)
#pragma unroll
    for (int ss = 0; ss < C::S; ++ss) {
      const int st = st0 + ss;
      if (st >= n_stages) break;
      ptx::cp_async_wait<C::S - 2>();
      __syncthreads();
      if (st + C::S - 1 < n_stages) load_stage((ss + C::S - 1) % C::S, g_begin + (st + C::S - 1) * C::KG);
      ptx::cp_async_commit();
      const int g0 = g_begin + st * C::KG;
      const uint8_t* a = tile(ss) + m_loc * C::kRowBytes;
      const uint8_t* b = tile(ss) + kBTile + n_loc * C::kRowBytes;
      const uint8_t* sca = scales(ss);
      const uint8_t* scb = scales(ss) + kBScales;
#pragma unroll
      for (int kg = 0; kg < C::KG; ++kg) {
        if (g0 + kg >= g_end) break;
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) {
          uint32_t af[C::MT][4], bf[C::NT][2];
          const int off = kg * 64 + kk * 16 + t * 4;
#pragma unroll
          for (int i = 0; i < C::MT; ++i) {
            const uint32_t w0 = *reinterpret_cast<const uint32_t*>(a + (i * 16 + gq) * C::kRowBytes + off);
            const uint32_t w1 = *reinterpret_cast<const uint32_t*>(a + (i * 16 + gq + 8) * C::kRowBytes + off);
            ptx::unpack_int4x8_x16_split(w0, af[i][0], af[i][2]);
            ptx::unpack_int4x8_x16_split(w1, af[i][1], af[i][3]);
          }
#pragma unroll
          for (int j = 0; j < C::NT; ++j) {
            const uint32_t w = *reinterpret_cast<const uint32_t*>(b + (j * 8 + gq) * C::kRowBytes + off);
            ptx::unpack_int4x8_x16_split(w, bf[j][0], bf[j][1]);
          }
#pragma unroll
          for (int i = 0; i < C::MT; ++i)
#pragma unroll
            for (int j = 0; j < C::NT; ++j)
              ptx::mma_s8_16832(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1]);
        }
        float sa[C::MT][2], sw[C::NT][2];
#pragma unroll
        for (int i = 0; i < C::MT; ++i)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            sa[i][h] = stage_scale<C::kScaleWords>(sca, m_loc + i * 16 + gq + h * 8, a_par[i][h], g0, kg);
#pragma unroll
        for (int j = 0; j < C::NT; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h)
            sw[j][h] = stage_scale<C::kScaleWords>(scb, n_loc + j * 8 + 2 * t + h, b_par[j][h], g0, kg) *
                       (1.0f / 256.0f);
        promote<C>(p, acc, facc, m0 + m_loc, n0 + n_loc, g0 + kg, true, sa, sw);
      }
    }
  ptx::cp_async_wait<0>();
  __syncthreads();

  // INT8 outlier tail (split 0 only): 128-wide chunks, A rows at smem, B rows after them.
  if (p.O > 0 && blockIdx.z == 0) {
    float sa[C::MT][2], sw[C::NT][2];
#pragma unroll
    for (int i = 0; i < C::MT; ++i)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = m0 + m_loc + i * 16 + gq + h * 8;
        sa[i][h] = r < op.p_rows ? __half2float(op.pso[r]) : 0.0f;
      }
#pragma unroll
    for (int j = 0; j < C::NT; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int c = n0 + n_loc + j * 8 + 2 * t + h;
        sw[j][h] = c < op.q_rows ? __half2float(op.qso[c]) : 0.0f;
      }
    uint8_t* oa = smem;
    uint8_t* ob = smem + C::BM * kQ8Stride;
    for (int o0 = 0; o0 < p.O; o0 += 128) {
      for (int i = tid; i < C::BM * 8; i += C::kThreads) {
        const int r = i / 8, c = i % 8;
        const bool ok = m0 + r < op.p_rows && o0 + c * 16 < p.O;
        ptx::cp_async_16(oa + r * kQ8Stride + c * 16, ok ? op.p8 + int64_t(m0 + r) * p.O + o0 + c * 16 : op.p8, ok);
      }
      for (int i = tid; i < C::BN * 8; i += C::kThreads) {
        const int r = i / 8, c = i % 8;
        const bool ok = n0 + r < op.q_rows && o0 + c * 16 < p.O;
        ptx::cp_async_16(ob + r * kQ8Stride + c * 16, ok ? op.q8 + int64_t(n0 + r) * p.O + o0 + c * 16 : op.q8, ok);
      }
      ptx::cp_async_commit();
      ptx::cp_async_wait<0>();
      __syncthreads();
      const uint8_t* a = oa + m_loc * kQ8Stride;
      const uint8_t* b = ob + n_loc * kQ8Stride;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t af[C::MT][4], bf[C::NT][2];
#pragma unroll
        for (int i = 0; i < C::MT; ++i) {
          const uint8_t* r0 = a + (i * 16 + gq) * kQ8Stride + kk * 32 + t * 4;
          const uint8_t* r1 = r0 + 8 * kQ8Stride;
          af[i][0] = *reinterpret_cast<const uint32_t*>(r0);
          af[i][1] = *reinterpret_cast<const uint32_t*>(r1);
          af[i][2] = *reinterpret_cast<const uint32_t*>(r0 + 16);
          af[i][3] = *reinterpret_cast<const uint32_t*>(r1 + 16);
        }
#pragma unroll
        for (int j = 0; j < C::NT; ++j) {
          const uint8_t* c0 = b + (j * 8 + gq) * kQ8Stride + kk * 32 + t * 4;
          bf[j][0] = *reinterpret_cast<const uint32_t*>(c0);
          bf[j][1] = *reinterpret_cast<const uint32_t*>(c0 + 16);
        }
#pragma unroll
        for (int i = 0; i < C::MT; ++i)
#pragma unroll
          for (int j = 0; j < C::NT; ++j)
            ptx::mma_s8_16832(acc[i][j], af[i][0], af[i][1], af[i][2], af[i][3], bf[j][0], bf[j][1]);
      }
      __syncthreads();
    }
    // the outlier partial sums of all chunks are one term (P_o over all O channels)
    promote<C>(p, acc, facc, m0 + m_loc, n0 + n_loc, p.G, false, sa, sw);
  }

  // Epilogue. With split-K, this CTA's partial tile goes to the workspace and the tile's last CTA sums
  // all of them in split order. Outputs go in pairs of adjacent columns, or one at a time with SWAP
  // (adjacent accumulators are different tokens there).
  auto for_each_pair = [&](auto&& f) {
#pragma unroll
    for (int i = 0; i < C::MT; ++i)
#pragma unroll
      for (int j = 0; j < C::NT; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int r = m0 + m_loc + i * 16 + gq + h * 8, c = n0 + n_loc + j * 8 + 2 * t;
          if constexpr (C::kSwap) {
            const int64_t o0 = out_index<C>(p, r, c), o1 = out_index<C>(p, r, c + 1);
            if (o0 >= 0) f(o0, 0, facc[i][j][2 * h], 0.0f, false);
            if (o1 >= 0) f(o1, 0, facc[i][j][2 * h + 1], 0.0f, false);
          } else if (r < p.M) {
            f(int64_t(r) * p.N + c, c, facc[i][j][2 * h], facc[i][j][2 * h + 1], c + 1 < p.N);
          }
        }
  };
  // (o, c, v0, v1, pair): v0 at o when c < N; v1 at o + 1 when pair
  auto store = [&](int64_t o, int c, float v0, float v1, bool pair) {
    if constexpr (C::kSwap) store_out_one(p, o, v0);
    else store_out_pair(p, o, c, v0, v1);
    (void)pair;
  };
  if (p.partials) {
    const int64_t mn = int64_t(p.M) * p.N;
    float* mine = p.partials + blockIdx.z * mn;
    for_each_pair([&](int64_t o, int c, float v0, float v1, bool pair) {
      if (c < p.N) mine[o] = v0;
      if (pair) mine[o + 1] = v1;
    });
    if (!splitk_last_cta(p.counters + blockIdx.y * gridDim.x + blockIdx.x)) return;
    for_each_pair([&](int64_t o, int c, float, float, bool pair) {
      float v0, v1;
      splitk_sum_pair(p, mn, o, c < p.N, pair, v0, v1);
      store(o, c, v0, v1, pair);
    });
  } else {
    for_each_pair(store);
  }
}

template <class C>
KernelLaunch mma_launch() {
  const void* fn = reinterpret_cast<const void*>(mma_sync_gemm_kernel<C>);
  allow_dynamic_smem(fn, size_t(C::kSmem));
  static const int ctas_per_sm = [fn] {
    int n = 0;
    ATOM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, fn, C::kThreads, size_t(C::kSmem)));
    return n > 0 ? n : 1;
  }();
  // launch_gemm tiles M by bm and N by bn: with SWAP the tile's BN tokens and BM weight rows
  if constexpr (C::kSwap) return {mma_sync_gemm_kernel<C>, C::BN, C::BM, C::kThreads, C::kSmem, ctas_per_sm, true};
  else return {mma_sync_gemm_kernel<C>, C::BM, C::BN, C::kThreads, C::kSmem, ctas_per_sm, true};
}

// The tile configurations (index = atom_gemm's config). Measured: docs/results.md §3e.
using Cfg0 = MmaCfg<16, 64, 1, 4, 3, 4, 3>;    // M <= 16 (decode): 3 stages of 4 groups, 3 CTAs per SM
using Cfg1 = MmaCfg<64, 64, 2, 2, 4, 1, 2>;    // M 17-127 when O > 128: 4 stages of one group (MINB 3 spilled)
using Cfg2 = MmaCfg<128, 128, 2, 4, 3, 1, 1>;  // large M without wgmma (tests and benchmarks only)
using Cfg0Tiled = MmaCfg<16, 64, 1, 4, 3, 4, 3, true>;  // diagnostic 109
// timing-only variants of config 0 with more bytes in flight per CTA (the profile's top stall is the stage
// barrier): 110 = 5 stages of 2 groups (4 in flight), 111 = 4 stages of 4 groups (2 CTAs per SM)
using Cfg0Deep2 = MmaCfg<16, 64, 1, 4, 5, 2, 3>;
using Cfg0Deep4 = MmaCfg<16, 64, 1, 4, 4, 4, 2>;
// A / B swapped (weights in the A fragments), M <= 8 per tile: 64 weight rows (one m16 tile per warp), 4-group
// stages; and 128 rows (two per warp, sharing the activation fragment), 2-group stages. Not yet measured.
using Cfg12 = MmaCfg<64, 8, 4, 1, 3, 4, 3, false, true>;
using Cfg13 = MmaCfg<128, 8, 4, 1, 3, 2, 2, false, true>;

}  // namespace

KernelLaunch mma_sync_kernel(int config) {
  switch (config) {
    case 0: return mma_launch<Cfg0>();
    case 1: return mma_launch<Cfg1>();
    case 12: return mma_launch<Cfg12>();
    case 13: return mma_launch<Cfg13>();
    case 109: return mma_launch<Cfg0Tiled>();
    case 110: return mma_launch<Cfg0Deep2>();
    case 111: return mma_launch<Cfg0Deep4>();
    default: return mma_launch<Cfg2>();
  }
}

}  // namespace atom::cuda::gemm_detail
