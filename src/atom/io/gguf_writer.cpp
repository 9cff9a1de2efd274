#include "atom/io/gguf_writer.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "atom/core/error.h"

namespace atom::io {

namespace {
// GGUF value type codes (spec).
enum : uint32_t { kF32 = 6, kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12 };

template <typename T>
void put(std::vector<uint8_t>& b, T v) {
  uint8_t tmp[sizeof(T)];
  std::memcpy(tmp, &v, sizeof(T));
  b.insert(b.end(), tmp, tmp + sizeof(T));
}
void put_str(std::vector<uint8_t>& b, const std::string& s) {
  put<uint64_t>(b, s.size());
  b.insert(b.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& b, const GgufValue& v) {
  if (auto* i = std::get_if<int64_t>(&v)) { put<uint32_t>(b, kI64); put<int64_t>(b, *i); }
  else if (auto* u = std::get_if<uint64_t>(&v)) { put<uint32_t>(b, kU64); put<uint64_t>(b, *u); }
  else if (auto* d = std::get_if<double>(&v)) { put<uint32_t>(b, kF64); put<double>(b, *d); }
  else if (auto* t = std::get_if<bool>(&v)) { put<uint32_t>(b, kBool); put<uint8_t>(b, *t ? 1 : 0); }
  else if (auto* s = std::get_if<std::string>(&v)) { put<uint32_t>(b, kString); put_str(b, *s); }
  else {
    const GgufArray& a = std::get<GgufArray>(v);
    put<uint32_t>(b, kArray);
    if (auto* ai = std::get_if<std::vector<int64_t>>(&a)) {
      put<uint32_t>(b, kI64); put<uint64_t>(b, ai->size());
      for (int64_t x : *ai) put<int64_t>(b, x);
    } else if (auto* af = std::get_if<std::vector<double>>(&a)) {
      put<uint32_t>(b, kF32); put<uint64_t>(b, af->size());
      for (double x : *af) put<float>(b, float(x));
    } else if (auto* as = std::get_if<std::vector<std::string>>(&a)) {
      put<uint32_t>(b, kString); put<uint64_t>(b, as->size());
      for (const auto& x : *as) put_str(b, x);
    } else {
      const auto& ab = std::get<std::vector<bool>>(a);
      put<uint32_t>(b, kBool); put<uint64_t>(b, ab.size());
      for (bool x : ab) put<uint8_t>(b, x ? 1 : 0);
    }
  }
}
}  // namespace

void write_gguf_metadata(const std::string& path, const std::map<std::string, GgufValue>& kv) {
  std::vector<uint8_t> b;
  b.insert(b.end(), {'G', 'G', 'U', 'F'});
  put<uint32_t>(b, 3);
  put<uint64_t>(b, 0);  // tensors
  put<uint64_t>(b, kv.size());
  for (const auto& [key, value] : kv) {
    put_str(b, key);
    put_value(b, value);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    ATOM_CHECK(f.good(), "cannot write '{}'", tmp);
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    ATOM_CHECK(f.good(), "write to '{}' failed", tmp);
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace atom::io
