// GGUF v3 reader (v2 accepted too): metadata key/values, tensor infos, and tensor data
// dequantized to fp32 for F32/F16/BF16/Q8_0/Q4_0/Q4_1. Anything else -> atom::Error naming
// the tensor, its type and the file. All counts, lengths and offsets are bounds-checked.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "atom/core/mapped_file.h"
#include "atom/core/tensor.h"

namespace atom::io {

// ggml tensor types (numbering as in the GGUF spec).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
std::string ggml_type_name(uint32_t t);

using GgufArray = std::variant<std::vector<int64_t>, std::vector<double>, std::vector<std::string>,
                               std::vector<bool>>;
using GgufValue = std::variant<int64_t, uint64_t, double, bool, std::string, GgufArray>;

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the fastest-varying (row length)
  uint32_t type = 0;          // GgmlType value
  uint64_t offset = 0;        // relative to the data section
  size_t nbytes = 0;
  // PyTorch-order shape (reversed dims): a [n_out, n_in] weight has dims {n_in, n_out}.
  std::vector<int64_t> shape() const { return {dims.rbegin(), dims.rend()}; }
};

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // throws atom::Error
  static std::unique_ptr<GgufFile> from_buffer(const uint8_t* data, size_t size,
                                               std::string name = "<buffer>");

  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return kv_; }
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  bool has_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor_info(const std::string& name) const;  // throws if absent

  // Dequantized fp32 tensor, PyTorch-order shape. Throws for unsupported types.
  Tensor get_f32(const std::string& name) const;
  // The tensor's raw bytes in the file (any type, still quantized); valid while *this lives.
  std::span<const uint8_t> tensor_bytes(const std::string& name) const;

  // Typed metadata access; *_or variants return the default when the key is absent and
  // throw when it is present with the wrong type.
  bool has(const std::string& key) const { return kv_.count(key) != 0; }
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;   // any integer type
  double get_float(const std::string& key) const;  // float or integer types
  std::string get_string_or(const std::string& key, const std::string& def) const;
  int64_t get_int_or(const std::string& key, int64_t def) const;
  double get_float_or(const std::string& key, double def) const;
  bool get_bool_or(const std::string& key, bool def) const;
  const std::vector<std::string>& get_string_array(const std::string& key) const;
  const std::vector<int64_t>& get_int_array(const std::string& key) const;
  const std::vector<double>& get_float_array(const std::string& key) const;
  const std::string& path() const { return path_; }

 private:
  GgufFile() = default;
  void parse(const uint8_t* data, size_t size);
  std::string path_;
  std::shared_ptr<MappedFile> file_;
  const uint8_t* data_section_ = nullptr;
  size_t data_section_size_ = 0;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> kv_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// Dequantizes `n` values of ggml type `type` from `src` (n must be a multiple of the block size).
void dequantize_row(uint32_t type, const uint8_t* src, float* dst, int64_t n);

}  // namespace atom::io
