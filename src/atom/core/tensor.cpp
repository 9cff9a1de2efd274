#include "atom/core/tensor.h"

#include <fmt/format.h>

#include "atom/core/error.h"
#include "atom/core/half.h"

namespace atom {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I8: case DType::U8: return 1;
    case DType::I64: return 8;
  }
  return 0;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::I32: return "I32";
    case DType::I64: return "I64";
  }
  return "?";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string Tensor::shape_str() const { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor Tensor::from_f32(std::vector<int64_t> shape, std::vector<float> values) {
  Tensor t;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  ATOM_CHECK(size_t(t.numel()) == values.size(), "from_f32: shape {} does not hold {} values",
             t.shape_str(), values.size());
  auto owner = std::make_shared<std::vector<float>>(std::move(values));
  t.data = reinterpret_cast<const uint8_t*>(owner->data());
  t.storage = owner;
  return t;
}

Tensor Tensor::from_bytes(DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  Tensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  ATOM_CHECK(t.nbytes() == bytes.size(), "from_bytes: shape {} of {} needs {} bytes, got {}",
             t.shape_str(), dtype_name(dtype), t.nbytes(), bytes.size());
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  t.data = owner->data();
  t.storage = owner;
  return t;
}

std::vector<float> to_f32(const Tensor& t, std::string_view name) {
  const size_t n = size_t(t.numel());
  std::vector<float> out(n);
  if (n == 0) return out;  // memcpy into an empty vector's null data() is UB
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out.data(), t.data, n * 4);
      break;
    case DType::F16: {
      const uint16_t* p = t.as<uint16_t>();
      for (size_t i = 0; i < n; ++i) out[i] = fp16_to_float(p[i]);
      break;
    }
    case DType::BF16: {
      const uint16_t* p = t.as<uint16_t>();
      for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(p[i]);
      break;
    }
    default:
      fail("{}: dtype {} is not a floating type", name, dtype_name(t.dtype));
  }
  return out;
}

}  // namespace atom
