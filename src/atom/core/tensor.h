// Host tensors: a dtype, a shape (outermost first, like PyTorch/safetensors) and bytes.
// A Tensor either owns its bytes or views bytes owned by someone else (e.g. a MappedFile
// kept alive through `keep_alive`).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace atom {

enum class DType : uint8_t { F32, F16, BF16, I8, U8, I32, I64 };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);  // "F32", "F16", ... (safetensors spelling)

struct Tensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;        // never null for a non-empty tensor
  std::shared_ptr<const void> storage;  // owner of `data` (vector or mapped file)

  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  std::string shape_str() const;  // "[576, 1536]"

  template <typename T>
  const T* as() const { return reinterpret_cast<const T*>(data); }

  // Owning tensor of fp32 values.
  static Tensor from_f32(std::vector<int64_t> shape, std::vector<float> values);
  // Owning tensor of raw bytes of the given dtype (size must match shape).
  static Tensor from_bytes(DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
};

// Converts any floating tensor (F32/F16/BF16) to an fp32 vector; throws for integer dtypes.
std::vector<float> to_f32(const Tensor& t, std::string_view name_for_errors = "tensor");

}  // namespace atom
