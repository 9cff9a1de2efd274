// Integer GEMM with per-group scales: the arithmetic core of every quantized linear on the CPU.
//
//   y[m,n] = Σ_g  fp32(s_a[m,g] · s_w[n,g]) · fp32(P[m,n,g]),   P[m,n,g] = Σ_{k∈g} qa[m,k]·qw[n,k]
//
// where the reduction axis K is cut into groups (consecutive ranges, any lengths, ragged allowed),
// P is an exact int32 partial sum, and the scale product and the accumulation over groups are fp32
// (groups in ascending order). Atom W4A4+O128 = INT4 groups + one INT8 group for the outliers;
// W8A8 = one INT8 group spanning K.
//
// Kernels (all produce bit-identical P):
//   Scalar      portable loops (the reference the others are tested against);
//   Avx2        vpmaddubsw: INT4 groups as (qa+8)·qw accumulated in int16 (<= 512 channels at a
//               time, no saturation possible), INT8 groups with the sign trick |qa|·(qw·sign qa);
//   Avx512Vnni  vpdpbusd: (qa+8)·qw or (qa+128)·qw straight into int32.
// The offset forms are corrected exactly with per-(n,g) weight sums: P = Σ(qa+o)·qw − o·Σqw.
//
// Weights are re-laid out once into "panels" of 16 output channels × 4 consecutive k (64 bytes):
// one 512-bit load is 16 columns' k-quads, which vpdpbusd multiplies by a broadcast 4-byte slice
// of one activation row — so every accumulator lane belongs to one output column and the group's
// partial sums come out without horizontal reductions. Each group is padded to a multiple of 4
// channels with zero weights.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace atom::quant {

enum class IntIsa { Auto, Scalar, Avx2, Avx512Vnni };

// The best kernel this CPU runs; the environment variable ATOM_INT_ISA=scalar|avx2|avx512 lowers it
// (for benchmarks and debugging).
IntIsa best_int_isa();
// Auto -> best_int_isa(); throws atom::Error when the CPU lacks the requested instructions.
IntIsa resolve_int_isa(IntIsa isa);
bool int_isa_supported(IntIsa isa);
const char* int_isa_name(IntIsa isa);

// One group: channels [k0, k0+len) of the reduction. bits 4: every qa and qw in [-8, 7];
// bits 8: in [-127, 127] (−128 is never produced by the quantizers and is rejected for weights).
struct IntGroup {
  int64_t k0 = 0, len = 0;
  int bits = 4;
};

class IntGemmWeights {
 public:
  IntGemmWeights() = default;
  // qw [n, k] row-major signed values, w_scale [n, groups.size()]. Groups must tile [0, k) in order.
  IntGemmWeights(const int8_t* qw, int64_t n, int64_t k, std::vector<IntGroup> groups, const float* w_scale);

  // y[m, n] = the formula above (overwrites y). qa [m, k] row-major with row stride lda_qa >= k
  // (same channel order as qw), a_scale [m, groups]. When psums is not null it also receives P as
  // int32 [m, n, groups] (for tests; slower). Preconditions (not checked per call): activations in
  // their group's range (see IntGroup).
  void gemm(const int8_t* qa, int64_t lda_qa, const float* a_scale, int64_t m, float* y,
            IntIsa isa = IntIsa::Auto, int32_t* psums = nullptr) const;

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  const std::vector<IntGroup>& groups() const { return groups_; }
  size_t bytes() const { return panels_.size() + wsum_.size() * 4 + scale_.size() * 4; }

  // Internal layout, shared with the per-ISA kernels.
  static constexpr int kPanel = 16;    // output channels per panel
  static constexpr int kNAlign = 32;   // n is padded to this (two panels: the VNNI tile width)
  struct PaddedGroup {
    int64_t k0, len;  // in qa/qw
    int64_t q0, nq;   // in 4-channel quads of the padded layout
    int bits;
  };

 private:
  int64_t n_ = 0, k_ = 0, n_pad_ = 0, quads_ = 0;
  std::vector<IntGroup> groups_;
  std::vector<PaddedGroup> pgroups_;
  std::vector<int8_t> panels_;   // [n_pad/16][quads][16][4]
  std::vector<int32_t> wsum_;    // [groups][n_pad]  Σ_{k∈g} qw[n,k]
  std::vector<float> scale_;     // [groups][n_pad]  s_w, 0 in the padding
};

namespace detail {
// Per-ISA kernel: int32 partial sums of one group for a tile of MR activation rows × NP panels.
// a: MR rows of encoded activations (row stride lda bytes, already offset to quad q0);
// w: NP panels (stride panel_stride bytes, already offset to quad q0); acc: [MR][NP·16] int32.
// Encoded activations: Scalar — signed; Avx2 — INT4 groups qa+8, INT8 groups signed;
// Avx512Vnni — INT4 groups qa+8, INT8 groups qa+128. Correction (o·Σqw) is applied by the caller.
void group_dot_avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t nq, bool narrow, int32_t* acc);
void group_dot_avx512vnni(const uint8_t* a, int64_t lda, const int8_t* w, int64_t panel_stride, int64_t nq,
                          int32_t* acc);
constexpr int kAvx2Rows = 4, kAvx2Panels = 1;
constexpr int kVnniRows = 8, kVnniPanels = 2;
bool cpu_has_avx512vnni();
}  // namespace detail

}  // namespace atom::quant
