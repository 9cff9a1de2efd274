// Decode attention over the paged cache: split-KV flash-decoding on fp16 tensor cores.
//
// Grid (split, sequence, kv head x head group of <= 8 query heads). A CTA of 4 warps takes one split
// (a run of whole pages) of one sequence for one kv head and computes it for all (<= 8) query heads of
// the GQA group at once, so each KV byte is read from HBM exactly once. Warps take 16-token groups in
// turn and keep their own online softmax; the CTA merges its warps in shared memory and writes either
// the final output (one split) or an unnormalised partial (O, max, sum) that decode_reduce merges.
//
// Tensor-core mapping per 16-token group (m16n8k16, f32 accumulate). Tokens are the M side of both
// products and query heads the N side (8 columns): a decode query is one row per head, so with heads on
// M (16 rows) MHA would waste 15/16 of every MMA; with heads on N it wastes at most 7/8 and each group
// takes half the MMAs (mma.sync issue bounded the int4 kernel at ~50% of HBM before).
//   S[tok][head] = K[tok][d] . Q^T[d][head]     A = K rows straight from the stage: lane (tok g, quarter c)
//                                               holds a quarter of tokens g and g+8; the dot product does
//                                               not care which physical dims a k-slot holds as long as Q
//                                               uses the same assignment. B = Q^T (column g = head g).
//   O^T[d][head] += V^T[d][tok] . P'^T[tok][head]  A = V^T: lane (g, c) holds an eighth of the dims of
//                                               tokens 2c,2c+1,2c+8,2c+9; row g (g+8) of m-tile t is
//                                               physical dim (D/8)*g + 2t (+1). B = P' = exp(S - m) *
//                                               v_scale[tok], moved from the score layout (tokens g,
//                                               g+8; heads 2c, 2c+1) to the B layout with 4 shuffles.
// Stored integers enter the tensor cores raw, as 1024 + q (the 0x6400 magic; int4 odd nibbles as
// 1024 + 16q against q/16), and the zero points are removed from the fp32 results once per token:
//   S = k_scale[t] * (S_raw - 1024 * sum(Q frag) - k_zero[t] * sum(Q))     (per head, computed once)
//   O = O_raw - sum_t P'[t] * (1024 + v_zero[t])
// so converting a K or V element costs one lop3 / prmt per two elements and nothing else.
#include <cuda_fp16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "atom/backend/cuda/attention_common.cuh"
#include "atom/backend/cuda/decode_splits.h"
#include "atom/backend/cuda/paged_kv.h"

namespace atom::cuda {
namespace {

constexpr int kWarps = kDecodeWarps;

template <KvDtype DT, int D>
struct Dec {
  static constexpr bool kQuant = DT != KvDtype::F16;
  static constexpr int kBits = DT == KvDtype::F16 ? 16 : DT == KvDtype::I8 ? 8 : 4;
  static constexpr int kRowBytes = D * kBits / 8;
  static constexpr int kKWords = kRowBytes / 16;  // a quarter row per lane
  static constexpr int kVWords = kRowBytes / 32;  // an eighth of a row per lane
  static constexpr int kNKB = D / 16;             // k-blocks of the score product
  static constexpr int kNT = D / 8;               // dims of a lane's eighth in P.V (kNT/2 m-tiles)
  static constexpr int kMinBlocks = DT == KvDtype::I4 ? 4 : DT == KvDtype::I8 ? 3 : 2;  // no spills (ptxas, nvcc 13.0)
  // Each warp streams its 16-token groups through a ring of kStages shared-memory stages filled by
  // cp.async, so kStages-1 groups per warp are in flight without holding registers (one group of int4
  // is only 2 KiB: with a register prefetch of one group the kernel was latency-bound at ~64% of HBM).
  // Stage layout: K values [16][row] | V values [16][row] | (int) K scales [16] fp16 | V scales | K zeros
  // [16] u8 | V zeros — the block layout of paged_kv_layout.h for 16 tokens.
  static constexpr int kStages = DT == KvDtype::I4 ? 6 : DT == KvDtype::I8 ? 4 : 3;
  static constexpr int kValBytes = 16 * kRowBytes;
  static constexpr int kStageBytes = 2 * kValBytes + (kQuant ? 16 * 6 : 0);
  static constexpr size_t kSmemBytes = size_t(kWarps) * kStages * kStageBytes;

  // Element (within the lane's quarter row) that k-slot s (0..3 = b0,b1,b2,b3) of k-block kb holds.
  __device__ static constexpr int k_elem(int kb, int s) {
    if constexpr (DT == KvDtype::I4) {
      const int base = 8 * (kb / 2) + 2 * (kb % 2);
      return base + (s == 0 ? 0 : s == 1 ? 4 : s == 2 ? 1 : 5);
    } else {
      return 4 * kb + s;
    }
  }
  // int4: the k-slots 2c+8, 2c+9 take the odd nibbles in place (mask 0x00F000F0: 1024 + 16n, no shift);
  // the Q fragment for those slots is q/16 (a power of two) so the products carry q * n.
  static constexpr float kQScaleHi = DT == KvDtype::I4 ? 1.0f / 16.0f : 1.0f;
  // int4 V: odd dims (rows g+8 of every O^T m-tile) carry 16x their value; their zero term is
  // sum_t P'[t] * (1024 + 16 zero[t]) and the result is scaled by 1/16 at the end.
  static constexpr int kVHiMul = DT == KvDtype::I4 ? 16 : 1;
  // The two fragment words (k-slots 2c,2c+1 and 2c+8,2c+9) of k-block kb from one token row's quarter,
  // raw: 1024 + q (int), 1024 + 16q (int4 odd nibbles), or the fp16 values.
  __device__ static void k_frag(const uint32_t (&w)[kKWords], int kb, uint32_t& lo, uint32_t& hi) {
    if constexpr (DT == KvDtype::F16) {
      lo = w[2 * kb]; hi = w[2 * kb + 1];
    } else if constexpr (DT == KvDtype::I8) {
      lo = attn::bytes01_to_half2_biased(w[kb]);
      hi = attn::bytes23_to_half2_biased(w[kb]);
    } else {
      const uint32_t x = w[kb / 2] >> (8 * (kb % 2));
      lo = attn::nibbles_to_half2_biased(x);
      hi = attn::lop3_and_or(x, 0x00F000F0u, 0x64006400u);
    }
  }
  // Fragment words for dims j = 0..kNT-1 of this lane's eighth (dim (D/8)*g + j) from two token rows'
  // eighths x0 (token t0) and x1 (token t1), as half2(t0, t1); integers biased, 1024 + q (exact).
  __device__ static void v_frags(const uint32_t (&x0)[kVWords], const uint32_t (&x1)[kVWords], uint32_t (&b)[kNT]) {
    if constexpr (DT == KvDtype::F16) {
#pragma unroll
      for (int j = 0; j < kNT; ++j) b[j] = __byte_perm(x0[j / 2], x1[j / 2], j % 2 ? 0x7632 : 0x5410);
    } else if constexpr (DT == KvDtype::I8) {
#pragma unroll
      for (int j = 0; j < kNT; j += 2) {
        const int k = j % 4;
        const uint32_t y = __byte_perm(x0[j / 4], x1[j / 4], k | (k + 4) << 4 | (k + 1) << 8 | (k + 5) << 12);
        b[j] = attn::bytes01_to_half2_biased(y);
        b[j + 1] = attn::bytes23_to_half2_biased(y);
      }
    } else {  // odd dims take their nibble in place, as 1024 + 16q (kVScaleHi): one shift per 4 dims
#pragma unroll
      for (int j = 0; j < kNT; j += 4) {
        const int k = (j / 2) % 4;  // byte of the word holding elements j..j+3
        const uint32_t y = __byte_perm(x0[j / 8], x1[j / 8], k | (k + 1) << 4 | (k + 4) << 8 | (k + 5) << 12);
        const uint32_t y8 = y >> 8;
        b[j] = attn::nibbles_to_half2_biased(y);
        b[j + 1] = attn::lop3_and_or(y, 0x00F000F0u, 0x64006400u);
        b[j + 2] = attn::nibbles_to_half2_biased(y8);
        b[j + 3] = attn::lop3_and_or(y8, 0x00F000F0u, 0x64006400u);
      }
    }
  }
};

// What one lane loads for one 16-token group.
template <KvDtype DT, int D>
struct GroupRegs {
  using T = Dec<DT, D>;
  uint32_t k[2][T::kKWords];  // token rows g and g+8
  uint32_t v[4][T::kVWords];  // tokens 2c, 2c+1, 2c+8, 2c+9
  uint32_t ks[2], vs[2];      // fp16 bits of the scales of token rows g, g+8
  uint32_t kz[2], vz[2];      // zero points of token rows g, g+8

  // Fills one stage with a 16-token group (tokens off0..off0+15 of block blk): 16-byte cp.async chunks.
  // K and V of the group are each 16 * row bytes (a multiple of 512), so lane i copies chunks i, i+32,
  // ... of both with affine addresses (no per-chunk branches: the issue cost is per group, per lane).
  // Lane-constant part of the metadata copy: lanes 0,1 K scales; 2,3 V scales; 4 K zeros; 5 V zeros.
  // The lane's offsets inside a block are 32-bit (a block is a few KiB), so an issue costs one multiply-add
  // per source and one 64-bit add each (the 64-bit chain was ~40 instructions per step).
  struct LaneOffsets {
    int32_t k, v, meta;  // this lane's first K / V chunk and its metadata chunk for token 0
    int meta_per_tok;    // metadata bytes per token of this lane's chunk (2, 1, 0: idle)
  };
  __device__ static LaneOffsets lane_offsets(const PagedKvLayout& L, int lane) {
    LaneOffsets o;
    o.k = int32_t(L.k_values()) + 16 * lane;
    o.v = int32_t(L.v_values()) + 16 * lane;
    o.meta_per_tok = !T::kQuant || lane >= 6 ? 0 : lane < 4 ? 2 : 1;
    o.meta = int32_t(lane < 2 ? L.k_scales() + 16 * lane : lane < 4 ? L.v_scales() + 16 * (lane - 2) : lane == 4 ? L.k_zeros() : L.v_zeros());
    return o;
  }
  // stage_lane: the stage + 16 * lane.
  __device__ static void issue(uint8_t* stage_lane, const uint8_t* blk, int off0, const LaneOffsets& o) {
    static_assert(T::kValBytes % 512 == 0, "a group's K (V) bytes must be whole warp-wide 16-byte sweeps");
    const int32_t rows = off0 * T::kRowBytes;
    const uint8_t* k = blk + (o.k + rows);
    const uint8_t* v = blk + (o.v + rows);
#pragma unroll
    for (int i = 0; i < T::kValBytes / 512; ++i) {
      ptx::cp_async_16(stage_lane + 512 * i, k + 512 * i, true);
      ptx::cp_async_16(stage_lane + T::kValBytes + 512 * i, v + 512 * i, true);
    }
    if constexpr (T::kQuant) {
      if (o.meta_per_tok) ptx::cp_async_16(stage_lane + 2 * T::kValBytes, blk + (o.meta + o.meta_per_tok * off0), true);
    }
  }

  template <int N>
  __device__ static void lds(uint32_t (&w)[N], const uint8_t* p) {
    if constexpr (N % 4 == 0) {
#pragma unroll
      for (int i = 0; i < N / 4; ++i) {
        const uint4 x = reinterpret_cast<const uint4*>(p)[i];
        w[4 * i] = x.x; w[4 * i + 1] = x.y; w[4 * i + 2] = x.z; w[4 * i + 3] = x.w;
      }
    } else if constexpr (N == 2) {
      const uint2 x = *reinterpret_cast<const uint2*>(p);
      w[0] = x.x; w[1] = x.y;
    } else {
      w[0] = *reinterpret_cast<const uint32_t*>(p);
    }
  }

  // This lane's fragments' raw words from a filled stage: K and the metadata (load_k), V (load_v, issued
  // later so that a step's V words are not all live across its score products).
  __device__ void load_v(const uint8_t* stage, int g, int c) {
    const int tok[4] = {2 * c, 2 * c + 1, 2 * c + 8, 2 * c + 9};
#pragma unroll
    for (int i = 0; i < 4; ++i) lds(v[i], stage + T::kValBytes + tok[i] * T::kRowBytes + g * (T::kRowBytes / 8));
  }
  __device__ void load_k(const uint8_t* stage, int g, int c) {
#pragma unroll
    for (int i = 0; i < 2; ++i) lds(k[i], stage + (g + 8 * i) * T::kRowBytes + c * (T::kRowBytes / 4));
    if constexpr (T::kQuant) {
      const uint8_t* x = stage + 2 * T::kValBytes;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        ks[i] = *reinterpret_cast<const uint16_t*>(x + 2 * (g + 8 * i));
        vs[i] = *reinterpret_cast<const uint16_t*>(x + 32 + 2 * (g + 8 * i));
        kz[i] = x[64 + g + 8 * i];
        vz[i] = x[80 + g + 8 * i];
      }
    } else {
      ks[0] = ks[1] = vs[0] = vs[1] = kz[0] = kz[1] = vz[0] = vz[1] = 0u;
    }
  }
};

struct DecodeArgs {
  PagedKvLayout L;
  const uint8_t* pool;
  int layer;
  const __half* q;
  const int32_t* seq_lens;
  const int32_t* block_tables;
  int max_blocks, n_heads, group, n_head_groups, n_splits, pages_per_split;
  float scale_log2;
  __half* out;
  float* partials;
};

// NG: 16-token groups per warp step (default_groups_per_step, paged_attention_decode's groups_per_step).
template <KvDtype DT, int D, int NG>
__global__ void __launch_bounds__(kWarps * 32, Dec<DT, D>::kMinBlocks) decode_kernel(const DecodeArgs a) {
  using T = Dec<DT, D>;
  const int split = blockIdx.x, b = blockIdx.y;
  const int hk = blockIdx.z / a.n_head_groups, hg = blockIdx.z % a.n_head_groups;
  const int h0 = hk * a.group + hg * 8, nh = min(8, a.group - hg * 8);
  const int len = a.seq_lens[b];
  const int P = a.L.page_size;
  const int tb = split * a.pages_per_split * P;
  if (tb >= len && !(split == 0 && len <= 0)) return;
  const int te = min(len, tb + a.pages_per_split * P);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;

  __shared__ __align__(16) __half sQ[8][D];
  __shared__ float sM[kWarps][8], sL[kWarps][8];
  extern __shared__ __align__(16) uint8_t dsmem[];  // the warps' stage rings; sO after the main loop
  uint8_t* ring = dsmem + size_t(warp) * T::kStages * T::kStageBytes;
  auto sO = reinterpret_cast<float (*)[8][D + 1]>(dsmem);
  for (int i = threadIdx.x; i < 8 * D; i += blockDim.x) {
    const int r = i / D, d = i % D;
    sQ[r][d] = r < nh ? a.q[(int64_t(b) * a.n_heads + h0 + r) * D + d] : __float2half(0.0f);
  }
  __syncthreads();
  // Q^T as the B operand: column g = query head g, k-slots mapped to this lane's quarter of the dims.
  uint32_t qb_lo[T::kNKB], qb_hi[T::kNKB];
  float qfrag_sum = 0.0f, q_sum = 0.0f;  // head g, this quarter: sum of the fragment values, of q as used
#pragma unroll
  for (int kb = 0; kb < T::kNKB; ++kb) {
    const __half* qr = &sQ[g][c * (D / 4)];
    const __half2 lo = __halves2half2(qr[T::k_elem(kb, 0)], qr[T::k_elem(kb, 1)]);
    const __half2 hi = __halves2half2(__float2half_rn(__half2float(qr[T::k_elem(kb, 2)]) * T::kQScaleHi),
                                      __float2half_rn(__half2float(qr[T::k_elem(kb, 3)]) * T::kQScaleHi));
    qb_lo[kb] = *reinterpret_cast<const uint32_t*>(&lo);
    qb_hi[kb] = *reinterpret_cast<const uint32_t*>(&hi);
    const float2 fl = __half22float2(lo), fh = __half22float2(hi);
    qfrag_sum += (fl.x + fl.y) + (fh.x + fh.y);
    q_sum += (fl.x + fl.y) + (fh.x + fh.y) / T::kQScaleHi;
  }
  // The score layout holds heads 2c, 2c+1: their zero-point terms (see the header), from lanes 8c, 8c+4.
  float k_bias[2] = {0.0f, 0.0f}, k_zq[2] = {0.0f, 0.0f};
  if constexpr (T::kQuant) {
    qfrag_sum = attn::warp_sum_quad(qfrag_sum);
    q_sum = attn::warp_sum_quad(q_sum);
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      k_bias[e] = 1024.0f * __shfl_sync(0xffffffffu, qfrag_sum, 4 * (2 * c + e));
      k_zq[e] = __shfl_sync(0xffffffffu, q_sum, 4 * (2 * c + e));
    }
  }

  // Per head 2c+e: running max, this lane's partial row sum and zero-point sum (reduced after the loop).
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, zc[2] = {0.0f, 0.0f}, zc_hi[2] = {0.0f, 0.0f};
  float o[T::kNT / 2][4];  // O^T m-tile t: dims (D/8)g + 2t (+1) x heads 2c, 2c+1
#pragma unroll
  for (int t = 0; t < T::kNT / 2; ++t) o[t][0] = o[t][1] = o[t][2] = o[t][3] = 0.0f;

  // A warp takes NG consecutive 16-token groups per iteration (a "step" of 16 * NG tokens): one online-softmax
  // update, one rescale check and twice the independent MMA chains per step. Steps j of this warp are steps
  // warp + j*kWarps of the split.
  constexpr int kStepTokens = 16 * NG;
  constexpr int kSlots = T::kStages / NG;  // ring depth in steps
  static_assert(kSlots >= 2, "decode: the ring must hold at least two steps");
  const int n_steps = (te - tb + kStepTokens - 1) / kStepTokens;
  const int32_t* bt = a.block_tables + int64_t(b) * a.max_blocks;
  const int n_mine = warp < n_steps ? (n_steps - warp + kWarps - 1) / kWarps : 0;
  // Address arithmetic per group kept to a shift, a mask and one multiply-add (it was ~110 of ~480
  // instructions per group: a 64-bit block_offset chain and a division by the page size).
  const HeadPages hp(a.L, a.pool, a.layer, hk);
  int t_issue = tb + kStepTokens * warp;  // first token of the next step to issue
  const auto lane_off = GroupRegs<DT, D>::lane_offsets(a.L, lane);
  uint8_t* const ring_lane = ring + 16 * lane;
  // Block-table entries of the next step's groups (0 for a group past the end: never issued).
  auto step_pages = [&](int (&pages)[NG]) {
#pragma unroll
    for (int u = 0; u < NG; ++u) {
      const int t = t_issue + 16 * u;
      pages[u] = t < te ? bt[t >> hp.shift] : 0;
    }
  };
  auto issue_step = [&](int slot, const int (&pages)[NG]) {
#pragma unroll
    for (int u = 0; u < NG; ++u) {
      const int t = t_issue + 16 * u;
      if (t < te)
        GroupRegs<DT, D>::issue(ring_lane + (slot * NG + u) * T::kStageBytes, hp.block(pages[u]), t & hp.mask, lane_off);
    }
    t_issue += kStepTokens * kWarps;
  };
#pragma unroll
  for (int j = 0; j < kSlots - 1; ++j) {
    if (j < n_mine) {
      int pages[NG];
      step_pages(pages);
      issue_step(j, pages);
    }
    ptx::cp_async_commit();
  }
  // The block-table entries of the next step to issue are loaded one iteration ahead (latency hidden).
  int page_next[NG];
#pragma unroll
  for (int u = 0; u < NG; ++u) page_next[u] = 0;
  if (kSlots - 1 < n_mine) step_pages(page_next);
  int slot_issue = kSlots - 1, slot_use = 0;
  GroupRegs<DT, D> cur[NG];
  for (int j = 0; j < n_mine; ++j) {
    const int t0 = tb + kStepTokens * (warp + j * kWarps);
    if (j + kSlots - 1 < n_mine) {
      issue_step(slot_issue, page_next);
      if (j + kSlots < n_mine) step_pages(page_next);
    }
    ptx::cp_async_commit();
    slot_issue = slot_issue + 1 == kSlots ? 0 : slot_issue + 1;
    ptx::cp_async_wait<kSlots - 1>();
    __syncwarp();
    const uint8_t* stages = ring + slot_use * NG * T::kStageBytes;
    slot_use = slot_use + 1 == kSlots ? 0 : slot_use + 1;
#pragma unroll
    for (int u = 0; u < NG; ++u) cur[u].load_k(stages + u * T::kStageBytes, g, c);
    // ---- scores: s[u][2r + e] = S[token 16u + g + 8r][head 2c + e] (a group never issued is masked) ----
    float s[NG][4];
    bool valid[NG][2];
    float vscale[NG][2];
#pragma unroll
    for (int u = 0; u < NG; ++u) {
      float s_odd[4] = {0.0f, 0.0f, 0.0f, 0.0f};  // two chains of HMMAs, not one
      s[u][0] = s[u][1] = s[u][2] = s[u][3] = 0.0f;
#pragma unroll
      for (int kb = 0; kb < T::kNKB; ++kb) {
        uint32_t a0, a1, a2, a3;
        T::k_frag(cur[u].k[0], kb, a0, a2);
        T::k_frag(cur[u].k[1], kb, a1, a3);
        ptx::mma_f16_16816(kb % 2 ? s_odd : s[u], a0, a1, a2, a3, qb_lo[kb], qb_hi[kb]);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) s[u][i] += s_odd[i];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        vscale[u][r] = 1.0f;
        if constexpr (T::kQuant) {
          const float ksc = __half2float(__ushort_as_half(static_cast<unsigned short>(cur[u].ks[r])));
          const float kz = float(cur[u].kz[r]);
          s[u][2 * r] = ksc * (s[u][2 * r] - fmaf(kz, k_zq[0], k_bias[0]));
          s[u][2 * r + 1] = ksc * (s[u][2 * r + 1] - fmaf(kz, k_zq[1], k_bias[1]));
          vscale[u][r] = __half2float(__ushort_as_half(static_cast<unsigned short>(cur[u].vs[r])));
        }
        valid[u][r] = t0 + 16 * u + g + 8 * r < te;
        s[u][2 * r] = valid[u][r] ? s[u][2 * r] * a.scale_log2 : -INFINITY;  // select: garbage never leaks
        s[u][2 * r + 1] = valid[u][r] ? s[u][2 * r + 1] * a.scale_log2 : -INFINITY;
      }
    }
    float corr[2], p[NG][4];
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float mloc = fmaxf(s[0][e], s[0][2 + e]);  // over the step's tokens: the 8 lanes of this column pair
#pragma unroll
      for (int u = 1; u < NG; ++u) mloc = fmaxf(mloc, fmaxf(s[u][e], s[u][2 + e]));
      mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 4));
      mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 8));
      mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 16));
      const float mnew = fmaxf(m[e], mloc);
      const float muse = mnew == -INFINITY ? 0.0f : mnew;
      corr[e] = attn::exp2_ftz(m[e] - muse);
      m[e] = mnew;
      float lsum = 0.0f;
#pragma unroll
      for (int u = 0; u < NG; ++u) {
        p[u][e] = attn::exp2_ftz(s[u][e] - muse);
        p[u][2 + e] = attn::exp2_ftz(s[u][2 + e] - muse);
        lsum += p[u][e] + p[u][2 + e];
        p[u][e] = valid[u][0] ? p[u][e] * vscale[u][0] : 0.0f;
        p[u][2 + e] = valid[u][1] ? p[u][2 + e] * vscale[u][1] : 0.0f;
      }
      l[e] = l[e] * corr[e] + lsum;
    }
    if (__any_sync(0xffffffffu, corr[0] != 1.0f || corr[1] != 1.0f)) {  // the max rarely moves after the first steps
#pragma unroll
      for (int t = 0; t < T::kNT / 2; ++t) {
        o[t][0] *= corr[0]; o[t][1] *= corr[1]; o[t][2] *= corr[0]; o[t][3] *= corr[1];
      }
      zc[0] *= corr[0]; zc[1] *= corr[1]; zc_hi[0] *= corr[0]; zc_hi[1] *= corr[1];
    }
#pragma unroll
    for (int u = 0; u < NG; ++u) {
      // pk[e] = half2(P'[g][2c+e], P'[g+8][2c+e]): the fp16 P' the tensor cores see
      const uint32_t pk0 = attn::pack_half2(p[u][0], p[u][2]), pk1 = attn::pack_half2(p[u][1], p[u][3]);
      if constexpr (T::kQuant) {
        const float2 f0 = __half22float2(*reinterpret_cast<const __half2*>(&pk0));
        const float2 f1 = __half22float2(*reinterpret_cast<const __half2*>(&pk1));
        const float z0 = float(1024 + cur[u].vz[0]), z1 = float(1024 + cur[u].vz[1]);
        zc[0] += f0.x * z0 + f0.y * z1;
        zc[1] += f1.x * z0 + f1.y * z1;
        if constexpr (T::kVHiMul != 1) {
          const float h0 = float(1024 + T::kVHiMul * cur[u].vz[0]), h1 = float(1024 + T::kVHiMul * cur[u].vz[1]);
          zc_hi[0] += f0.x * h0 + f0.y * h1;
          zc_hi[1] += f1.x * h0 + f1.y * h1;
        }
      }
      // B layout: lane (g, c) needs head g at tokens 2c, 2c+1 (b0) and 2c+8, 2c+9 (b1); token 2c (2c+8)
      // is row 2c of the score layout, held by lanes 8c..8c+3 as pk[head % 2] of head 2(lane % 4) + e.
      const int src0 = 8 * c + g / 2, src1 = src0 + 4;
      const uint32_t x00 = __shfl_sync(0xffffffffu, pk0, src0), x01 = __shfl_sync(0xffffffffu, pk1, src0);
      const uint32_t x10 = __shfl_sync(0xffffffffu, pk0, src1), x11 = __shfl_sync(0xffffffffu, pk1, src1);
      const uint32_t x0 = (g & 1) ? x01 : x00, x1 = (g & 1) ? x11 : x10;  // (P'[2c], P'[2c+8]), (P'[2c+1], P'[2c+9])
      const uint32_t pb0 = __byte_perm(x0, x1, 0x5410), pb1 = __byte_perm(x0, x1, 0x7632);
      // ---- O^T += V^T . P'^T ----
      cur[u].load_v(stages + u * T::kStageBytes, g, c);
      if constexpr (DT == KvDtype::F16) {  // fp16 garbage past the end may be NaN: zero it (0 * NaN = NaN)
        const int tok[4] = {2 * c, 2 * c + 1, 2 * c + 8, 2 * c + 9};
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int w = 0; w < T::kVWords; ++w) cur[u].v[i][w] = t0 + 16 * u + tok[i] < te ? cur[u].v[i][w] : 0u;
      }
      uint32_t v01[T::kNT], v89[T::kNT];
      T::v_frags(cur[u].v[0], cur[u].v[1], v01);
      T::v_frags(cur[u].v[2], cur[u].v[3], v89);
#pragma unroll
      for (int t = 0; t < T::kNT / 2; ++t)
        ptx::mma_f16_16816(o[t], v01[2 * t], v01[2 * t + 1], v89[2 * t], v89[2 * t + 1], pb0, pb1);
    }
    __syncwarp();  // every lane has read the step's stages: they may be refilled next iteration
  }
  ptx::cp_async_wait<0>();  // only empty groups can be pending; the rings become sO below
  __syncthreads();

  // ---- merge the warps: heads 2c+e < nh; row sums and zero-point sums over the 8 token rows g ----
#pragma unroll
  for (int e = 0; e < 2; ++e) {
#pragma unroll
    for (int off = 4; off < 32; off *= 2) {
      l[e] += __shfl_xor_sync(0xffffffffu, l[e], off);
      zc[e] += __shfl_xor_sync(0xffffffffu, zc[e], off);
      if constexpr (T::kVHiMul != 1) zc_hi[e] += __shfl_xor_sync(0xffffffffu, zc_hi[e], off);
    }
    if constexpr (T::kVHiMul == 1) zc_hi[e] = zc[e];
    const int h = 2 * c + e;
    if (h < nh) {
#pragma unroll
      for (int t = 0; t < T::kNT / 2; ++t) {
        sO[warp][h][(D / 8) * g + 2 * t] = o[t][e] - zc[e];
        sO[warp][h][(D / 8) * g + 2 * t + 1] = (o[t][2 + e] - zc_hi[e]) * (1.0f / T::kVHiMul);
      }
      if (g == 0) { sM[warp][h] = m[e]; sL[warp][h] = l[e]; }
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < nh * D; i += blockDim.x) {
    const int r = i / D, d = i % D;
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) M = fmaxf(M, sM[w][r]);
    const float Mu = M == -INFINITY ? 0.0f : M;
    float L = 0.0f, acc = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float f = exp2f(sM[w][r] - Mu);
      L += f * sL[w][r];
      acc += f * sO[w][r][d];
    }
    const int h = h0 + r;
    if (a.n_splits == 1) {
      a.out[(int64_t(b) * a.n_heads + h) * D + d] = __float2half_rn(L > 0.0f ? acc / L : 0.0f);
    } else {
      float* row = a.partials + ((int64_t(b) * a.n_heads + h) * a.n_splits + split) * (D + 2);
      row[d] = acc;
      if (d == 0) { row[D] = M; row[D + 1] = L; }
    }
  }
}

// Merges the splits of one (sequence, head): block of D threads.
template <int D>
__global__ void __launch_bounds__(D) decode_reduce_kernel(const DecodeArgs a) {
  const int b = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  const int len = a.seq_lens[b];
  const int tps = a.pages_per_split * a.L.page_size;
  const int n = min(a.n_splits, max(1, (len + tps - 1) / tps));
  const float* rows = a.partials + (int64_t(b) * a.n_heads + h) * a.n_splits * (D + 2);
  float M = -INFINITY;
  for (int s = 0; s < n; ++s) M = fmaxf(M, rows[s * (D + 2) + D]);
  const float Mu = M == -INFINITY ? 0.0f : M;
  float L = 0.0f, acc = 0.0f;
  for (int s = 0; s < n; ++s) {
    const float f = exp2f(rows[s * (D + 2) + D] - Mu);
    L += f * rows[s * (D + 2) + D + 1];
    acc += f * rows[s * (D + 2) + d];
  }
  a.out[(int64_t(b) * a.n_heads + h) * D + d] = __float2half_rn(L > 0.0f ? acc / L : 0.0f);
}

int sm_count() {
  static const int n = [] {
    int dev = 0, v = 0;
    ATOM_CUDA_CHECK(cudaGetDevice(&dev));
    ATOM_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev));
    return v;
  }();
  return n;
}

template <KvDtype DT, int D>
constexpr size_t decode_smem() { return std::max(Dec<DT, D>::kSmemBytes, sizeof(float) * kWarps * 8 * (D + 1)); }

// The default groups per warp step: 2 for the quantized caches (their ring holds >= 2 steps), 1 for fp16.
template <KvDtype DT>
constexpr int default_groups_per_step() { return DT == KvDtype::F16 ? 1 : 2; }

// Resident decode CTAs per SM for one cache dtype / head_dim (registers and shared memory decide it).
template <KvDtype DT, int D>
int decode_ctas_per_sm() {
  static const int n = [] {
    constexpr int NG = default_groups_per_step<DT>();
    allow_dynamic_smem(reinterpret_cast<const void*>(decode_kernel<DT, D, NG>), decode_smem<DT, D>());
    int v = 0;
    ATOM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&v, decode_kernel<DT, D, NG>, kWarps * 32, decode_smem<DT, D>()));
    return std::max(1, v);
  }();
  return n;
}
int decode_ctas_per_sm(KvDtype dt, int head_dim) {
  return with_kv_shape(dt, head_dim, [](auto t, auto d) { return decode_ctas_per_sm<decltype(t)::value, decltype(d)::value>(); });
}

template <KvDtype DT, int D>
void launch_decode(const DecodeArgs& a, int B, int n_kv_heads, int groups_per_step, cudaStream_t s) {
  constexpr size_t smem = decode_smem<DT, D>();
  const dim3 grid(unsigned(a.n_splits), unsigned(B), unsigned(n_kv_heads * a.n_head_groups));
  auto run = [&](auto kernel) {
    allow_dynamic_smem(reinterpret_cast<const void*>(kernel), smem);
    kernel<<<grid, kWarps * 32, smem, s>>>(a);
  };
  if (groups_per_step <= 0) groups_per_step = default_groups_per_step<DT>();
  if constexpr (DT == KvDtype::F16) {
    ATOM_CUDA_REQUIRE(groups_per_step == 1, "paged_attention_decode: the fp16 cache takes 1 group per step");
    run(decode_kernel<DT, D, 1>);
  } else {
    ATOM_CUDA_REQUIRE(groups_per_step == 1 || groups_per_step == 2, "paged_attention_decode: groups_per_step must be 1 or 2");
    groups_per_step == 1 ? run(decode_kernel<DT, D, 1>) : run(decode_kernel<DT, D, 2>);
  }
  ATOM_CUDA_CHECK_LAUNCH();
  if (a.n_splits > 1) {
    decode_reduce_kernel<D><<<dim3(unsigned(B), unsigned(a.n_heads)), D, 0, s>>>(a);
    ATOM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void paged_attention_decode(const PagedKvCache& kv, int layer, const uint16_t* q, const int32_t* seq_lens,
                            const int32_t* block_tables, int max_blocks, int B, int n_heads, float scale,
                            uint16_t* out, AttentionWorkspace& ws, cudaStream_t s, int num_splits,
                            int groups_per_step) {
  const PagedKvLayout L = kv.layout();
  check_attention_args(L, layer, max_blocks, B, n_heads);
  ATOM_CUDA_REQUIRE(ws.head_dim == L.head_dim, "paged_attention_decode: workspace head_dim differs from the cache's");
  if (B == 0) return;
  ATOM_CUDA_REQUIRE(B <= 65535, "paged_attention_decode: B must be <= 65535");
  DecodeArgs a{};
  a.L = L;
  a.pool = kv.data();
  a.layer = layer;
  a.q = reinterpret_cast<const __half*>(q);
  a.seq_lens = seq_lens;
  a.block_tables = block_tables;
  a.max_blocks = max_blocks;
  a.n_heads = n_heads;
  a.group = n_heads / L.n_kv_heads;
  a.n_head_groups = (a.group + 7) / 8;
  a.scale_log2 = scale * attn::kLog2e;
  a.out = reinterpret_cast<__half*>(out);
  a.partials = ws.partials.data();
  // Splits: each at least 64 tokens (one group per warp), at most what the workspace holds; an explicit
  // request (tests, bench_attention --split-sweep) is honoured, else choose_pages_per_split.
  const int64_t base = int64_t(B) * L.n_kv_heads * a.n_head_groups;
  const int64_t cap = ws.max_partials / (int64_t(B) * n_heads);
  const int max_splits = int(std::max<int64_t>(1, std::min<int64_t>(cap, kDecodeMaxSplits)));
  const int min_pages = std::max(1, 64 / L.page_size);
  int pps;
  if (num_splits > 0) {
    const int splits = std::min(num_splits, max_splits);
    pps = (max_blocks + splits - 1) / splits;
  } else {
    const int64_t slots = int64_t(decode_ctas_per_sm(L.dtype, L.head_dim)) * sm_count();
    pps = choose_pages_per_split(base, max_blocks, L.page_size, slots, max_splits, min_pages);
  }
  a.pages_per_split = pps;
  a.n_splits = (max_blocks + pps - 1) / pps;
  ATOM_CUDA_REQUIRE(a.n_splits == 1 || int64_t(B) * n_heads * a.n_splits <= ws.max_partials,
                    "paged_attention_decode: workspace too small for this batch");
  with_kv_shape(L.dtype, L.head_dim, [&](auto dt, auto d) {
    launch_decode<decltype(dt)::value, decltype(d)::value>(a, B, L.n_kv_heads, groups_per_step, s);
  });
}

}  // namespace atom::cuda
