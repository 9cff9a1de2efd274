// A linear split along its input (K) axis into S contiguous segments, each its own Linear:
//   y = Σ_s seg_s(x[:, off_s : off_s + K_s])      summed in fp32, in segment order.
// This is how a row-parallel layer (o_proj, down_proj) is stored when it is meant to be split over S
// tensor-parallel ranks: each rank owns some segments, each with its own reorder, outlier tail and
// groups (docs/tensor-parallel.md). Run on one device, the segment-order sum is exactly what a
// rank-order all-reduce computes, so TP = S and TP = 1 give bit-identical results.
#pragma once
#include <memory>
#include <vector>

#include "atom/model/linear.h"

namespace atom {

class SegmentedLinear final : public Linear {
 public:
  // Segments are laid side by side along K; all must have the same out_features.
  explicit SegmentedLinear(std::vector<std::unique_ptr<Linear>> segments);
  void forward(const float* x, int64_t m, float* y) const override;
  std::string kind() const override;  // "segmented(<kind of segment 0>)"

  int num_segments() const { return int(seg_.size()); }
  const Linear& segment(int s) const { return *seg_[size_t(s)]; }
  int64_t segment_offset(int s) const { return off_[size_t(s)]; }
  // Moves segments [first, first + count) out into a new SegmentedLinear (or the bare segment when
  // count == 1). This object keeps empty slots for them: use it only to take the other ranks' parts.
  std::unique_ptr<Linear> take(int first, int count);

 private:
  std::vector<std::unique_ptr<Linear>> seg_;
  std::vector<int64_t> off_;
};

}  // namespace atom
