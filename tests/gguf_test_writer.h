// Minimal GGUF writer for tests: builds valid files byte by byte, with knobs to corrupt them.
// Written from the GGUF spec independently of src/atom/io/gguf.cpp.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace atom::testing {

enum GgufValueType : uint32_t {
  GV_U8 = 0, GV_I8 = 1, GV_U16 = 2, GV_I16 = 3, GV_U32 = 4, GV_I32 = 5, GV_F32 = 6, GV_BOOL = 7,
  GV_STRING = 8, GV_ARRAY = 9, GV_U64 = 10, GV_I64 = 11, GV_F64 = 12,
};

class GgufBuilder {
 public:
  uint32_t version = 3;
  uint64_t alignment = 32;  // must match a general.alignment key if one is added
  // Overrides for corrupt-file tests (-1 = use the real count).
  int64_t n_tensors_override = -1;
  int64_t n_kv_override = -1;

  // Appends little-endian bytes of any trivially copyable value.
  template <typename T>
  static void put(std::vector<uint8_t>& b, T v) {
    uint8_t tmp[sizeof(T)];
    std::memcpy(tmp, &v, sizeof(T));
    b.insert(b.end(), tmp, tmp + sizeof(T));
  }
  static void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
  }

  // Raw key/value: `value` holds the encoded value bytes for type `t`.
  void kv_raw(const std::string& key, uint32_t t, const std::vector<uint8_t>& value) {
    put_str(kv_, key);
    put<uint32_t>(kv_, t);
    kv_.insert(kv_.end(), value.begin(), value.end());
    ++n_kv_;
  }
  template <typename T>
  void kv(const std::string& key, uint32_t t, T v) {
    std::vector<uint8_t> b;
    put<T>(b, v);
    kv_raw(key, t, b);
  }
  void kv_u32(const std::string& key, uint32_t v) { kv<uint32_t>(key, GV_U32, v); }
  void kv_f32(const std::string& key, float v) { kv<float>(key, GV_F32, v); }
  void kv_bool(const std::string& key, bool v) { kv<uint8_t>(key, GV_BOOL, v ? 1 : 0); }
  void kv_str(const std::string& key, const std::string& v) {
    std::vector<uint8_t> b;
    put_str(b, v);
    kv_raw(key, GV_STRING, b);
  }
  void kv_str_array(const std::string& key, const std::vector<std::string>& v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, GV_STRING);
    put<uint64_t>(b, v.size());
    for (const auto& s : v) put_str(b, s);
    kv_raw(key, GV_ARRAY, b);
  }
  template <typename T>
  void kv_array(const std::string& key, uint32_t elem_type, const std::vector<T>& v) {
    std::vector<uint8_t> b;
    put<uint32_t>(b, elem_type);
    put<uint64_t>(b, v.size());
    for (const auto& x : v) put<T>(b, x);
    kv_raw(key, GV_ARRAY, b);
  }

  // dims in ggml order (dims[0] = row length). offset_override >= 0 forces the stored offset.
  void tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
              std::vector<uint8_t> data, int64_t offset_override = -1) {
    tensors_.push_back({name, std::move(dims), type, std::move(data), offset_override});
  }

  std::vector<uint8_t> build() const {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
    put<uint32_t>(b, version);
    put<uint64_t>(b, n_tensors_override >= 0 ? uint64_t(n_tensors_override) : tensors_.size());
    put<uint64_t>(b, n_kv_override >= 0 ? uint64_t(n_kv_override) : n_kv_);
    b.insert(b.end(), kv_.begin(), kv_.end());
    // Data layout: each tensor at the next multiple of the alignment.
    std::vector<uint64_t> offs;
    uint64_t off = 0;
    for (const auto& t : tensors_) {
      off = (off + alignment - 1) / alignment * alignment;
      offs.push_back(off);
      off += t.data.size();
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const auto& t = tensors_[i];
      put_str(b, t.name);
      put<uint32_t>(b, uint32_t(t.dims.size()));
      for (uint64_t d : t.dims) put<uint64_t>(b, d);
      put<uint32_t>(b, t.type);
      put<uint64_t>(b, t.offset_override >= 0 ? uint64_t(t.offset_override) : offs[i]);
    }
    if (!tensors_.empty()) {
      while (b.size() % alignment) b.push_back(0);
      const size_t base = b.size();
      for (size_t i = 0; i < tensors_.size(); ++i) {
        b.resize(base + offs[i], 0);
        b.insert(b.end(), tensors_[i].data.begin(), tensors_[i].data.end());
      }
    }
    return b;
  }

 private:
  struct T {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type;
    std::vector<uint8_t> data;
    int64_t offset_override;
  };
  std::vector<uint8_t> kv_;
  uint64_t n_kv_ = 0;
  std::vector<T> tensors_;
};

}  // namespace atom::testing
