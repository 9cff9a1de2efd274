// A linear layer y = x·Wᵀ as the model sees it. Implementations: DenseLinear (fp32 reference),
// and the quantized ones of src/atom/quant (Atom W4A4+O128, W8A8, ...), all on the CPU backend.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace atom {

class Linear {
 public:
  Linear(int64_t in_features, int64_t out_features) : in_(in_features), out_(out_features) {}
  virtual ~Linear() = default;
  // y[m, out] = x[m, in] · Wᵀ. x and y do not alias.
  virtual void forward(const float* x, int64_t m, float* y) const = 0;
  virtual std::string kind() const = 0;  // "dense", "atom-w4a4", ...
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

 private:
  int64_t in_, out_;
};

class DenseLinear final : public Linear {
 public:
  DenseLinear(int64_t in, int64_t out, std::vector<float> weight);  // weight [out, in]
  void forward(const float* x, int64_t m, float* y) const override;
  std::string kind() const override { return "dense"; }
  const std::vector<float>& weight() const { return w_; }
  std::vector<float>& mutable_weight() { return w_; }

 private:
  std::vector<float> w_;
};

}  // namespace atom
