// Fused activation kernels (issue 4 item 2): the op in front of a linear and the quantization of its
// output in one pass over the row, so the intermediate never goes through device memory.
//   rmsnorm_quant   RMSNorm (+ optional row gather)      -> q/k/v, gate/up inputs, the final norm
//   reorder_quant   identity (Atom: reorder-gather)      -> o_proj input
//   silu_mul_quant  SiLU(gate)·up                         -> down_proj input
// Each computes the op in fp32, rounds the result to fp16 (the value a 16-bit pipeline would hold:
// the CPU reference quantizes these fp16-rounded rows), and writes any of:
//   f16   the fp16 row, original channel order (fp16 mode's GEMM input; tests)
//   i8    W8A8: per-token INT8 of x/smooth (x/smooth in IEEE fp32, as W8A8Linear; smooth may be null),
//         scale fp16(max|x/smooth|/127) stored as float [m]
//   atom  Atom: gather by perm, INT4 groups (a_clip, ragged last group zero-padded) + INT8 outlier
//         tail (per-token scale), in exactly the GpuAtomActs layout atom_gemm consumes.
// Bit-exact with the CPU quantizers (quant/atom_linear.h, quant/w8a8_linear.h) applied to the fp16
// row the kernel produces (or, with quant_from_f32, to the fp32 row, which is not written out). That row equals the CPU op's output rounded to fp16 except for rounding-order
// effects: RMSNorm sums squares in double like cpu::rmsnorm, only in another order (the fp32 rstd can
// differ in the last bit in rare rows); SiLU uses the fast exponential and divide (a few ulps). Either can move an fp16
// value by 1 ulp (tests allow exactly that).
// Inputs: fp32, fp16 or bf16 rows (ActDtype). One block per row; the row is staged in shared memory,
// so any K up to 32768 works (row length is not restricted to multiples of anything).
#pragma once
#include <cstdint>
#include <vector>

#include "atom/backend/cuda/atom_gemm.h"

namespace atom::cuda {

enum class ActDtype { F32, F16, BF16 };

struct FusedOut {
  uint16_t* f16 = nullptr;          // [m, K] fp16 bits
  int8_t* i8 = nullptr;             // [m, K] W8A8 INT8
  float* i8_scale = nullptr;        // [m]
  const float* smooth = nullptr;    // [K] SmoothQuant factors (null: none)
  GpuAtomActs* atom = nullptr;      // buffers for >= m rows; atom->m is set to m
  const uint16_t* stage = nullptr;  // [K] atom_stage_table of the Atom reorder (GpuAtomWeights::stage)
  GpuAtomLayout L;                  // Atom layout of this input
  float a_clip = 0.9f, a_outlier_clip = 1.0f;
  // Quantize the op's fp32 value (as the CPU model's linears quantize their fp32 inputs) instead of
  // its fp16 rounding. The fp16 output (f16) is the rounded value either way.
  bool quant_from_f32 = false;
};

// ---- The staging table: where each input channel sits in a fused kernel's shared-memory row ----
// The Atom reorder happens as the row is staged: channel j goes to stage[j], chosen so that each lane of
// phase 2 reads its 16 values as two conflict-free 16-byte loads (fused_quant.cu). Reordered channel k < kn
// (INT4 group g = k/128, element w = k%128) goes to g*128 + atom_int4_stage_slot(w); outlier e = k - kn to
// G*128 + (e/128)*128 + atom_tail_stage_slot(e%128). The slot is (lane, piece, i): lane t's two 8-value
// pieces are slots 8t + i and 64 + 8t + i.
// INT4: element w = 32c + 16*hi + 8h + i (word pair h of chunk c, low or high halves) is lane 2c + h's piece hi.
constexpr int atom_int4_stage_slot(int w) { return (w % 32 >= 16 ? 64 : 0) + 8 * (2 * (w / 32) + (w % 16) / 8) + w % 8; }
// INT8 tail: element e = 16t + 8*piece + i is lane t's piece.
constexpr int atom_tail_stage_slot(int e) { return (e % 16 >= 8 ? 64 : 0) + 8 * (e / 16) + e % 8; }
// Staged row length: G*128 + the tail rounded up to 128.
inline int64_t atom_staged_len(const GpuAtomLayout& L) { return L.n_groups * 128 + (L.n_outlier + 127) / 128 * 128; }
// stage[j] for perm (perm[k] = original channel of reordered channel k); throws on a perm that is not a
// permutation of [0, K).
std::vector<uint16_t> atom_stage_table(const std::vector<int32_t>& perm, const GpuAtomLayout& L);

// Sets FusedOut's Atom fields from an uploaded linear's weights (perm, layout, clips).
inline FusedOut atom_target(GpuAtomActs& acts, const GpuAtomWeights& w) {
  FusedOut o;
  o.atom = &acts;
  o.stage = w.stage.data();
  o.L = w.L;
  o.a_clip = w.a_clip;
  o.a_outlier_clip = w.a_outlier_clip;
  return o;
}

// out row i = RMSNorm(x row r) with r = rows ? rows[i] : i; x [*, K] (row stride K), w [K] fp32.
void rmsnorm_quant(const void* x, ActDtype dt, int64_t m, int64_t K, const float* w, float eps, const FusedOut& out,
                   cudaStream_t s, const int32_t* rows = nullptr);
// x [m, K] row-major.
void reorder_quant(const void* x, ActDtype dt, int64_t m, int64_t K, const FusedOut& out, cudaStream_t s);
// gate = gu[r, 0..F), up = gu[r, F..2F) (row stride 2F: the fused gate/up GEMM's output).
void silu_mul_quant(const void* gu, ActDtype dt, int64_t m, int64_t F, const FusedOut& out, cudaStream_t s);

}  // namespace atom::cuda
