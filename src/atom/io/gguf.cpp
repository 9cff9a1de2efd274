// GGUF reader. The file is untrusted input: every count, length and offset is checked against
// the bytes that remain before anything is allocated or read, with overflow-safe arithmetic.
// Layout (little-endian): magic "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv key/values,
// n_tensors tensor infos, padding to `general.alignment`, then the data section.
#include "atom/io/gguf.h"

#include <cstring>
#include <limits>

#include "atom/core/error.h"

namespace atom::io {
namespace {

// GGUF metadata value types.
enum : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

constexpr int kMaxDims = 4;  // GGML_MAX_DIMS
// Element counts and byte sizes stay below 2^60 so later products/sums cannot overflow.
constexpr uint64_t kMaxElems = uint64_t(1) << 60;

struct TypeTraits {
  const char* name;
  uint32_t block;   // elements per block (0 = unknown type id)
  uint32_t nbytes;  // bytes per block
};

// Block geometry of every ggml type, so tensors of types we do not dequantize can still be
// bounds-checked and listed. Ids 4, 5 and 31..33 were removed from ggml.
TypeTraits type_traits(uint32_t t) {
  switch (t) {
    case 0: return {"F32", 1, 4};
    case 1: return {"F16", 1, 2};
    case 2: return {"Q4_0", 32, 18};
    case 3: return {"Q4_1", 32, 20};
    case 6: return {"Q5_0", 32, 22};
    case 7: return {"Q5_1", 32, 24};
    case 8: return {"Q8_0", 32, 34};
    case 9: return {"Q8_1", 32, 36};
    case 10: return {"Q2_K", 256, 84};
    case 11: return {"Q3_K", 256, 110};
    case 12: return {"Q4_K", 256, 144};
    case 13: return {"Q5_K", 256, 176};
    case 14: return {"Q6_K", 256, 210};
    case 15: return {"Q8_K", 256, 292};
    case 16: return {"IQ2_XXS", 256, 66};
    case 17: return {"IQ2_XS", 256, 74};
    case 18: return {"IQ3_XXS", 256, 98};
    case 19: return {"IQ1_S", 256, 50};
    case 20: return {"IQ4_NL", 32, 18};
    case 21: return {"IQ3_S", 256, 110};
    case 22: return {"IQ2_S", 256, 82};
    case 23: return {"IQ4_XS", 256, 136};
    case 24: return {"I8", 1, 1};
    case 25: return {"I16", 1, 2};
    case 26: return {"I32", 1, 4};
    case 27: return {"I64", 1, 8};
    case 28: return {"F64", 1, 8};
    case 29: return {"IQ1_M", 256, 56};
    case 30: return {"BF16", 1, 2};
    case 34: return {"TQ1_0", 256, 54};
    case 35: return {"TQ2_0", 256, 66};
    case 39: return {"MXFP4", 32, 17};
    default: return {nullptr, 0, 0};
  }
}

bool can_dequantize(uint32_t t) {
  switch (GgmlType(t)) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1:
      return true;
    default:
      return false;
  }
}

const char* value_type_name(uint32_t t) {
  static const char* kNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                 "bool", "string", "array", "u64", "i64", "f64"};
  return t <= kF64 ? kNames[t] : "?";
}

// Bounds-checked little-endian cursor over the file bytes.
class Reader {
 public:
  Reader(const uint8_t* d, size_t n, const std::string& path) : d_(d), n_(n), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }

  void need(uint64_t k, const char* what) const {
    ATOM_CHECK(k <= remaining(), "{}: truncated GGUF: {} needs {} bytes at offset {}, {} left", path_,
               what, k, pos_, remaining());
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, d_ + pos_, sizeof(T));  // little-endian host (x86-64 / aarch64)
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t len = read<uint64_t>(what);
    ATOM_CHECK(len <= remaining(), "{}: {} at offset {} has length {} but only {} bytes remain",
               path_, what, pos_ - 8, len, remaining());
    std::string s(reinterpret_cast<const char*>(d_ + pos_), size_t(len));
    pos_ += size_t(len);
    return s;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
  const std::string& path_;
};

// Minimum bytes one array element of type t occupies in the file (for count sanity checks).
uint64_t min_elem_bytes(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: case kString: return 8;  // a string is at least its length
    case kArray: return 12;                                     // type + count
    default: return 1;
  }
}

int64_t read_int_scalar(Reader& r, uint32_t t, const char* what) {
  switch (t) {
    case kU8: return r.read<uint8_t>(what);
    case kI8: return r.read<int8_t>(what);
    case kU16: return r.read<uint16_t>(what);
    case kI16: return r.read<int16_t>(what);
    case kU32: return r.read<uint32_t>(what);
    case kI32: return r.read<int32_t>(what);
    case kI64: return r.read<int64_t>(what);
    // u64 array elements above INT64_MAX wrap (two's complement); no real file has them.
    case kU64: return int64_t(r.read<uint64_t>(what));
  }
  return 0;
}

GgufValue read_value(Reader& r, uint32_t t, const std::string& key, const std::string& path) {
  switch (t) {
    case kU8: case kI8: case kU16: case kI16: case kU32: case kI32: case kI64:
      return read_int_scalar(r, t, "metadata value");
    case kU64: return r.read<uint64_t>("metadata value");
    case kF32: return double(r.read<float>("metadata value"));
    case kF64: return r.read<double>("metadata value");
    case kBool: {
      const uint8_t b = r.read<uint8_t>("metadata value");
      ATOM_CHECK(b <= 1, "{}: key '{}': bool value {} is neither 0 nor 1", path, key, b);
      return b != 0;
    }
    case kString: return r.str("metadata string");
    case kArray: {
      const uint32_t et = r.read<uint32_t>("array type");
      const uint64_t n = r.read<uint64_t>("array length");
      ATOM_CHECK(et <= kF64, "{}: key '{}': unknown array element type {}", path, key, et);
      ATOM_CHECK(et != kArray, "{}: key '{}': nested arrays are not supported", path, key);
      // Each element occupies at least min_elem_bytes in the file: reject counts the file
      // cannot hold before reserving memory for them.
      ATOM_CHECK(n <= r.remaining() / min_elem_bytes(et),
                 "{}: key '{}': array of {} {} elements does not fit in the {} remaining bytes", path,
                 key, n, value_type_name(et), r.remaining());
      switch (et) {
        case kString: {
          std::vector<std::string> v;
          v.reserve(size_t(n));
          for (uint64_t i = 0; i < n; ++i) v.push_back(r.str("array string"));
          return GgufArray(std::move(v));
        }
        case kF32: case kF64: {
          std::vector<double> v(static_cast<size_t>(n));
          for (auto& x : v) x = et == kF32 ? r.read<float>("array value") : r.read<double>("array value");
          return GgufArray(std::move(v));
        }
        case kBool: {
          std::vector<bool> v(static_cast<size_t>(n));
          for (uint64_t i = 0; i < n; ++i) {
            const uint8_t b = r.read<uint8_t>("array value");
            ATOM_CHECK(b <= 1, "{}: key '{}': bool value {} is neither 0 nor 1", path, key, b);
            v[i] = b != 0;
          }
          return GgufArray(std::move(v));
        }
        default: {
          std::vector<int64_t> v(static_cast<size_t>(n));
          for (auto& x : v) x = read_int_scalar(r, et, "array value");
          return GgufArray(std::move(v));
        }
      }
    }
  }
  fail("{}: key '{}': unknown metadata value type {}", path, key, t);
}

const char* kind_name(const GgufValue& v) {
  switch (v.index()) {
    case 0: case 1: return "integer";
    case 2: return "float";
    case 3: return "bool";
    case 4: return "string";
    default: {
      const auto& a = std::get<GgufArray>(v);
      switch (a.index()) {
        case 0: return "integer array";
        case 1: return "float array";
        case 2: return "string array";
        default: return "bool array";
      }
    }
  }
}

}  // namespace

std::string ggml_type_name(uint32_t t) {
  const TypeTraits tt = type_traits(t);
  return tt.name ? tt.name : "type#" + std::to_string(t);
}

GgufFile::GgufFile(const std::string& path) : path_(path) {
  file_ = std::make_shared<MappedFile>(path);
  parse(file_->data(), file_->size());
}

std::unique_ptr<GgufFile> GgufFile::from_buffer(const uint8_t* data, size_t size, std::string name) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = std::move(name);
  f->parse(data, size);
  return f;
}

void GgufFile::parse(const uint8_t* data, size_t size) {
  const std::string& p = path_;
  Reader r(data, size, p);
  ATOM_CHECK(size >= 4 && std::memcmp(data, "GGUF", 4) == 0, "{}: not a GGUF file (bad magic)", p);
  r.read<uint32_t>("magic");
  version_ = r.read<uint32_t>("version");
  ATOM_CHECK(version_ != 0x03000000u && version_ != 0x02000000u,
             "{}: big-endian GGUF files are not supported", p);
  ATOM_CHECK(version_ == 2 || version_ == 3, "{}: unsupported GGUF version {} (supported: 2, 3)", p,
             version_);
  const uint64_t n_tensors = r.read<uint64_t>("tensor count");
  const uint64_t n_kv = r.read<uint64_t>("metadata count");
  // A key/value needs >= 13 bytes (key length, type, 1-byte value), a tensor info >= 24
  // (name length, n_dims, type, offset): reject counts the file cannot possibly hold.
  ATOM_CHECK(n_kv <= r.remaining() / 13, "{}: metadata count {} is absurd for a {}-byte file", p,
             n_kv, size);
  ATOM_CHECK(n_tensors <= r.remaining() / 24, "{}: tensor count {} is absurd for a {}-byte file", p,
             n_tensors, size);

  for (uint64_t i = 0; i < n_kv; ++i) {
    std::string key = r.str("metadata key");
    const uint32_t t = r.read<uint32_t>("metadata value type");
    ATOM_CHECK(t <= kF64, "{}: key '{}': unknown metadata value type {}", p, key, t);
    GgufValue v = read_value(r, t, key, p);
    ATOM_CHECK(!kv_.count(key), "{}: duplicate metadata key '{}'", p, key);
    kv_.emplace(std::move(key), std::move(v));
  }

  uint64_t alignment = 32;
  if (has("general.alignment")) {
    const GgufValue& a = kv_.at("general.alignment");
    ATOM_CHECK(a.index() == 0 || a.index() == 1, "{}: general.alignment must be an integer", p);
    const uint64_t av = a.index() == 0 ? uint64_t(std::get<int64_t>(a)) : std::get<uint64_t>(a);
    ATOM_CHECK(av >= 1 && av <= (1u << 20) && (av & (av - 1)) == 0,
               "{}: general.alignment {} is not a power of two in [1, 2^20]", p, int64_t(av));
    alignment = av;
  }

  tensors_.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo ti;
    ti.name = r.str("tensor name");
    const uint32_t nd = r.read<uint32_t>("tensor n_dims");
    ATOM_CHECK(nd >= 1 && nd <= kMaxDims, "{}: tensor '{}': n_dims {} out of range (1..{})", p,
               ti.name, nd, kMaxDims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t dim = r.read<uint64_t>("tensor dim");
      ATOM_CHECK(dim >= 1 && dim < kMaxElems, "{}: tensor '{}': dimension {} is {} (must be positive)",
                 p, ti.name, d, int64_t(dim));
      ATOM_CHECK(!__builtin_mul_overflow(numel, dim, &numel) && numel < kMaxElems,
                 "{}: tensor '{}': element count overflows", p, ti.name);
      ti.dims.push_back(int64_t(dim));
    }
    ti.type = r.read<uint32_t>("tensor type");
    ti.offset = r.read<uint64_t>("tensor offset");
    const TypeTraits tt = type_traits(ti.type);
    ATOM_CHECK(tt.block != 0, "{}: tensor '{}': unknown ggml type {}", p, ti.name, ti.type);
    ATOM_CHECK(ti.dims[0] % tt.block == 0,
               "{}: tensor '{}': row length {} is not a multiple of the {} block size {}", p, ti.name,
               ti.dims[0], tt.name, tt.block);
    // numel < 2^60 and bytes-per-block / block <= 8, so this cannot overflow; checked anyway.
    uint64_t nbytes = 0;
    ATOM_CHECK(!__builtin_mul_overflow(numel / tt.block, uint64_t(tt.nbytes), &nbytes),
               "{}: tensor '{}': byte size overflows", p, ti.name);
    ti.nbytes = size_t(nbytes);
    ATOM_CHECK(ti.offset % alignment == 0, "{}: tensor '{}': offset {} is not aligned to {}", p,
               ti.name, ti.offset, alignment);
    ATOM_CHECK(!index_.count(ti.name), "{}: duplicate tensor name '{}'", p, ti.name);
    index_.emplace(ti.name, tensors_.size());
    tensors_.push_back(std::move(ti));
  }

  // The data section starts at the next multiple of the alignment. A file without tensors may
  // end before that padding.
  const uint64_t start = (uint64_t(r.pos()) + alignment - 1) / alignment * alignment;
  if (start <= size) {
    data_section_ = data + start;
    data_section_size_ = size - size_t(start);
  } else {
    data_section_ = data + size;
    data_section_size_ = 0;
  }
  for (const auto& ti : tensors_) {
    ATOM_CHECK(ti.offset <= data_section_size_ && ti.nbytes <= data_section_size_ - ti.offset,
               "{}: tensor '{}': data [{}, +{}) lies past the end of the file (data section is {} "
               "bytes at offset {})",
               p, ti.name, ti.offset, ti.nbytes, data_section_size_, start);
  }
}

bool GgufFile::has_tensor(const std::string& name) const { return index_.count(name) != 0; }

const GgufTensorInfo& GgufFile::tensor_info(const std::string& name) const {
  auto it = index_.find(name);
  ATOM_CHECK(it != index_.end(), "{}: no tensor named '{}'", path_, name);
  return tensors_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_bytes(const std::string& name) const {
  const GgufTensorInfo& ti = tensor_info(name);
  return {data_section_ + ti.offset, ti.nbytes};
}

Tensor GgufFile::get_f32(const std::string& name) const {
  const GgufTensorInfo& ti = tensor_info(name);
  ATOM_CHECK(can_dequantize(ti.type),
             "{}: tensor '{}' has ggml type {}, which Atom cannot load (supported: F32, F16, BF16, "
             "Q8_0, Q4_0, Q4_1)",
             path_, ti.name, ggml_type_name(ti.type));
  int64_t numel = 1;
  for (int64_t d : ti.dims) numel *= d;
  std::vector<float> out(static_cast<size_t>(numel));
  dequantize_row(ti.type, data_section_ + ti.offset, out.data(), numel);
  return Tensor::from_f32(ti.shape(), std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Typed metadata access

namespace {
[[noreturn]] void wrong_type(const std::string& path, const std::string& key, const char* want,
                             const GgufValue& v) {
  fail("{}: metadata key '{}' has type {}, expected {}", path, key, kind_name(v), want);
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  auto it = kv_.find(key);
  ATOM_CHECK(it != kv_.end(), "{}: missing metadata key '{}'", path_, key);
  if (const auto* s = std::get_if<std::string>(&it->second)) return *s;
  wrong_type(path_, key, "string", it->second);
}

int64_t GgufFile::get_int(const std::string& key) const {
  auto it = kv_.find(key);
  ATOM_CHECK(it != kv_.end(), "{}: missing metadata key '{}'", path_, key);
  if (const auto* i = std::get_if<int64_t>(&it->second)) return *i;
  if (const auto* u = std::get_if<uint64_t>(&it->second)) {
    ATOM_CHECK(*u <= uint64_t(std::numeric_limits<int64_t>::max()),
               "{}: metadata key '{}' = {} is too large", path_, key, *u);
    return int64_t(*u);
  }
  wrong_type(path_, key, "integer", it->second);
}

double GgufFile::get_float(const std::string& key) const {
  auto it = kv_.find(key);
  ATOM_CHECK(it != kv_.end(), "{}: missing metadata key '{}'", path_, key);
  if (const auto* d = std::get_if<double>(&it->second)) return *d;
  if (const auto* i = std::get_if<int64_t>(&it->second)) return double(*i);
  if (const auto* u = std::get_if<uint64_t>(&it->second)) return double(*u);
  wrong_type(path_, key, "float", it->second);
}

std::string GgufFile::get_string_or(const std::string& key, const std::string& def) const {
  return has(key) ? get_string(key) : def;
}
int64_t GgufFile::get_int_or(const std::string& key, int64_t def) const {
  return has(key) ? get_int(key) : def;
}
double GgufFile::get_float_or(const std::string& key, double def) const {
  return has(key) ? get_float(key) : def;
}
bool GgufFile::get_bool_or(const std::string& key, bool def) const {
  auto it = kv_.find(key);
  if (it == kv_.end()) return def;
  if (const auto* b = std::get_if<bool>(&it->second)) return *b;
  wrong_type(path_, key, "bool", it->second);
}

template <typename T>
static const std::vector<T>& get_array(const std::map<std::string, GgufValue>& kv,
                                       const std::string& path, const std::string& key,
                                       const char* want) {
  auto it = kv.find(key);
  ATOM_CHECK(it != kv.end(), "{}: missing metadata key '{}'", path, key);
  if (const auto* a = std::get_if<GgufArray>(&it->second))
    if (const auto* v = std::get_if<std::vector<T>>(a)) return *v;
  wrong_type(path, key, want, it->second);
}

const std::vector<std::string>& GgufFile::get_string_array(const std::string& key) const {
  return get_array<std::string>(kv_, path_, key, "string array");
}
const std::vector<int64_t>& GgufFile::get_int_array(const std::string& key) const {
  return get_array<int64_t>(kv_, path_, key, "integer array");
}
const std::vector<double>& GgufFile::get_float_array(const std::string& key) const {
  return get_array<double>(kv_, path_, key, "float array");
}

}  // namespace atom::io
