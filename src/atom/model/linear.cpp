#include "atom/model/linear.h"

#include "atom/backend/cpu/ops.h"
#include "atom/core/error.h"

namespace atom {

DenseLinear::DenseLinear(int64_t in, int64_t out, std::vector<float> weight)
    : Linear(in, out), w_(std::move(weight)) {
  ATOM_CHECK(int64_t(w_.size()) == in * out, "DenseLinear: weight has {} values, expected {}x{}", w_.size(),
             out, in);
}

void DenseLinear::forward(const float* x, int64_t m, float* y) const {
  cpu::gemm_nt(m, out_features(), in_features(), x, in_features(), w_.data(), in_features(), y, out_features());
}

}  // namespace atom
