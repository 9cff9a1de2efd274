#include "atom/model/segmented_linear.h"

#include <cstring>

#include "atom/core/error.h"

namespace atom {
namespace {

int64_t total_in(const std::vector<std::unique_ptr<Linear>>& seg) {
  ATOM_CHECK(!seg.empty(), "SegmentedLinear: no segments");
  int64_t k = 0;
  for (const auto& s : seg) {
    ATOM_CHECK(s, "SegmentedLinear: null segment");
    ATOM_CHECK(s->out_features() == seg[0]->out_features(),
               "SegmentedLinear: segments differ in out_features ({} vs {})", s->out_features(),
               seg[0]->out_features());
    k += s->in_features();
  }
  return k;
}

}  // namespace

SegmentedLinear::SegmentedLinear(std::vector<std::unique_ptr<Linear>> segments)
    : Linear(total_in(segments), segments[0]->out_features()), seg_(std::move(segments)) {
  int64_t off = 0;
  for (const auto& s : seg_) {
    off_.push_back(off);
    off += s->in_features();
  }
}

std::string SegmentedLinear::kind() const { return "segmented(" + seg_[0]->kind() + ")"; }

void SegmentedLinear::forward(const float* x, int64_t m, float* y) const {
  const int64_t K = in_features(), N = out_features();
  std::vector<float> xs, ys;
  for (size_t s = 0; s < seg_.size(); ++s) {
    ATOM_CHECK(seg_[s], "SegmentedLinear: segment {} was taken by another rank", s);
    const int64_t ks = seg_[s]->in_features();
    xs.resize(size_t(m * ks));
    for (int64_t i = 0; i < m; ++i)
      std::memcpy(&xs[size_t(i * ks)], x + i * K + off_[s], size_t(ks) * sizeof(float));
    if (s == 0) {
      seg_[s]->forward(xs.data(), m, y);
      continue;
    }
    ys.resize(size_t(m * N));
    seg_[s]->forward(xs.data(), m, ys.data());
    for (int64_t i = 0; i < m * N; ++i) y[i] += ys[size_t(i)];  // segment order = all-reduce rank order
  }
}

std::unique_ptr<Linear> SegmentedLinear::take(int first, int count) {
  ATOM_CHECK(first >= 0 && count > 0 && first + count <= num_segments(),
             "SegmentedLinear: segments [{}, {}) out of {}", first, first + count, num_segments());
  if (count == 1) return std::move(seg_[size_t(first)]);
  std::vector<std::unique_ptr<Linear>> part;
  for (int s = first; s < first + count; ++s) part.push_back(std::move(seg_[size_t(s)]));
  return std::make_unique<SegmentedLinear>(std::move(part));
}

}  // namespace atom
