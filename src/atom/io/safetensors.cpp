// safetensors reader/writer. The header is untrusted input: every field is type-checked and
// every size/offset is checked against the file with overflow-safe arithmetic before use.
#include "atom/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "atom/core/error.h"

namespace atom::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Same cap as the reference implementation (MAX_HEADER_SIZE = 100 MB): a larger header is
// certainly corrupt and parsing it would only burn memory.
constexpr uint64_t kMaxHeaderSize = 100'000'000;
// Sizes are kept well below 2^63 so that numel * dtype_size and begin + nbytes never overflow.
constexpr uint64_t kMaxBytes = uint64_t(1) << 60;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> kTable[] = {
      {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"I32", DType::I32}, {"I64", DType::I64}};
  for (const auto& [name, dt] : kTable)
    if (s == name) { *out = dt; return true; }
  return false;
}

// Reads a non-negative JSON integer (rejects floats, negatives, bools).
bool json_uint(const json& j, uint64_t* out) {
  if (j.is_number_unsigned()) { *out = j.get<uint64_t>(); return true; }
  if (j.is_number_integer()) {
    int64_t v = j.get<int64_t>();
    if (v < 0) return false;
    *out = uint64_t(v);
    return true;
  }
  return false;
}

}  // namespace

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  file_ = std::make_shared<MappedFile>(path);
  parse(file_->data(), file_->size());
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::from_buffer(const uint8_t* data, size_t size,
                                                              std::string name) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = std::move(name);
  f->parse(data, size);
  return f;
}

void SafetensorsFile::parse(const uint8_t* data, size_t size) {
  const std::string& p = path_;
  ATOM_CHECK(size >= 8, "{}: not a safetensors file ({} bytes, need at least the 8-byte header length)",
             p, size);
  const uint64_t n = read_u64_le(data);
  ATOM_CHECK(n <= kMaxHeaderSize, "{}: corrupt safetensors header length {} (max {})", p, n,
             kMaxHeaderSize);
  ATOM_CHECK(n <= size - 8, "{}: safetensors header length {} exceeds the file ({} bytes)", p, n,
             size);
  ATOM_CHECK(n >= 2, "{}: safetensors header length {} is too small for a JSON object", p, n);
  const char* hdr = reinterpret_cast<const char*>(data + 8);
  ATOM_CHECK(hdr[0] == '{', "{}: safetensors header does not start with '{{'", p);

  json h;
  try {
    h = json::parse(hdr, hdr + n);
  } catch (const json::exception& e) {
    fail("{}: invalid safetensors header JSON: {}", p, e.what());
  }
  ATOM_CHECK(h.is_object(), "{}: safetensors header is not a JSON object", p);

  base_ = data + 8 + n;
  const uint64_t data_size = size - 8 - n;

  for (const auto& [key, val] : h.items()) {
    if (key == "__metadata__") {
      ATOM_CHECK(val.is_object(), "{}: __metadata__ must be an object of strings", p);
      for (const auto& [mk, mv] : val.items()) {
        ATOM_CHECK(mv.is_string(), "{}: __metadata__['{}'] must be a string", p, mk);
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    ATOM_CHECK(val.is_object(), "{}: tensor '{}': entry must be an object", p, key);
    const auto dt = val.find("dtype");
    const auto sh = val.find("shape");
    const auto off = val.find("data_offsets");
    ATOM_CHECK(dt != val.end() && dt->is_string(), "{}: tensor '{}': missing or non-string 'dtype'",
               p, key);
    ATOM_CHECK(sh != val.end() && sh->is_array(), "{}: tensor '{}': missing or non-array 'shape'", p,
               key);
    ATOM_CHECK(off != val.end() && off->is_array() && off->size() == 2,
               "{}: tensor '{}': 'data_offsets' must be an array [begin, end]", p, key);

    Entry e{};
    const std::string dts = dt->get<std::string>();
    if (!parse_dtype(dts, &e.dtype)) {
      static const std::set<std::string> kKnownUnsupported = {
          "BOOL", "F64", "I16", "U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3",
          "F6_E3M2", "C64"};
      if (kKnownUnsupported.count(dts))
        fail("{}: tensor '{}': dtype {} is not supported (supported: F32, F16, BF16, I8, U8, I32, I64)",
             p, key, dts);
      fail("{}: tensor '{}': unknown dtype '{}'", p, key, dts);
    }

    ATOM_CHECK(sh->size() <= 8, "{}: tensor '{}': {} dimensions is too many", p, key, sh->size());
    uint64_t numel = 1;
    for (const auto& d : *sh) {
      uint64_t v = 0;
      ATOM_CHECK(json_uint(d, &v), "{}: tensor '{}': shape entries must be non-negative integers", p,
                 key);
      ATOM_CHECK(v < kMaxBytes, "{}: tensor '{}': dimension {} is absurd", p, key, v);
      e.shape.push_back(int64_t(v));
      // Product with overflow check; a zero dimension makes the product 0 and stays valid.
      ATOM_CHECK(!__builtin_mul_overflow(numel, v, &numel) && numel < kMaxBytes,
                 "{}: tensor '{}': shape product overflows", p, key);
    }
    const uint64_t nbytes = numel * dtype_size(e.dtype);  // < 2^63: numel < 2^60, size <= 8

    uint64_t b = 0, en = 0;
    ATOM_CHECK(json_uint((*off)[0], &b) && json_uint((*off)[1], &en),
               "{}: tensor '{}': data_offsets must be non-negative integers", p, key);
    ATOM_CHECK(b <= en, "{}: tensor '{}': data_offsets end {} < begin {}", p, key, en, b);
    ATOM_CHECK(en <= data_size,
               "{}: tensor '{}': data_offsets [{}, {}] out of range (data section is {} bytes)", p,
               key, b, en, data_size);
    ATOM_CHECK(en - b == nbytes,
               "{}: tensor '{}': data_offsets span {} bytes but {} {} needs {} bytes", p, key,
               en - b, dts, json(*sh).dump(), nbytes);
    e.begin = size_t(b);
    e.end = size_t(en);
    tensors_.emplace(key, std::move(e));
  }

  // Entries must not overlap (gaps are tolerated). Zero-sized entries overlap nothing.
  std::vector<std::pair<size_t, const std::string*>> order;
  for (const auto& [name, e] : tensors_)
    if (e.end > e.begin) order.emplace_back(e.begin, &name);
  std::sort(order.begin(), order.end());
  for (size_t i = 1; i < order.size(); ++i) {
    const Entry& prev = tensors_.at(*order[i - 1].second);
    ATOM_CHECK(order[i].first >= prev.end, "{}: tensors '{}' and '{}' overlap in the data section", p,
               *order[i - 1].second, *order[i].second);
  }
}

Tensor SafetensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  ATOM_CHECK(it != tensors_.end(), "{}: no tensor named '{}'", path_, name);
  const Entry& e = it->second;
  Tensor t;
  t.dtype = e.dtype;
  t.shape = e.shape;
  const uint8_t* p = base_ + e.begin;
  if (e.end == e.begin) {
    // Empty tensor: still give a non-null pointer so callers never see nullptr data.
    static const uint64_t kEmpty = 0;
    t.data = reinterpret_cast<const uint8_t*>(&kEmpty);
    return t;
  }
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
    // Valid files written by aligned writers never get here, but a hand-made file may place a
    // tensor at an odd offset; copy it so typed access (t.as<float>()) is never misaligned.
    auto owner = std::make_shared<std::vector<uint64_t>>((e.end - e.begin + 7) / 8);
    std::memcpy(owner->data(), p, e.end - e.begin);
    t.data = reinterpret_cast<const uint8_t*>(owner->data());
    t.storage = owner;
    return t;
  }
  t.data = p;
  t.storage = file_;  // null for from_buffer: the caller owns the buffer
  return t;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, e] : tensors_) out.push_back(name);
  return out;  // std::map keeps them sorted
}

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints

namespace {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ATOM_CHECK(in.good(), "cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  ATOM_CHECK(!in.bad(), "error reading '{}'", path);
  return ss.str();
}

}  // namespace

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& path) {
  std::error_code ec;
  std::string index_path, single_path;
  if (fs::is_directory(path, ec)) {
    const fs::path dir(path);
    if (fs::exists(dir / "model.safetensors.index.json", ec))
      index_path = (dir / "model.safetensors.index.json").string();
    else if (fs::exists(dir / "model.safetensors", ec))
      single_path = (dir / "model.safetensors").string();
    else
      fail("'{}': no model.safetensors or model.safetensors.index.json in this directory", path);
  } else if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0) {
    index_path = path;
  } else {
    single_path = path;
  }

  if (!single_path.empty()) {
    shards_.push_back(std::make_unique<SafetensorsFile>(single_path));
    for (const auto& n : shards_[0]->names()) where_[n] = 0;
    return;
  }

  json idx;
  try {
    idx = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", index_path, e.what());
  }
  ATOM_CHECK(idx.is_object(), "{}: index must be a JSON object", index_path);
  auto wm = idx.find("weight_map");
  ATOM_CHECK(wm != idx.end() && wm->is_object() && !wm->empty(),
             "{}: missing or empty 'weight_map' object", index_path);

  const fs::path dir = fs::path(index_path).parent_path();
  std::map<std::string, size_t> shard_of_file;
  for (const auto& [tensor, file] : wm->items()) {
    ATOM_CHECK(file.is_string(), "{}: weight_map['{}'] must be a file name string", index_path,
               tensor);
    const std::string f = file.get<std::string>();
    // Shard names come from the index: keep them inside the checkpoint directory.
    const fs::path fp(f);
    ATOM_CHECK(!f.empty() && fp.is_relative() &&
                   std::none_of(fp.begin(), fp.end(), [](const fs::path& c) { return c == ".."; }),
               "{}: weight_map['{}'] = '{}' is not a file name inside the checkpoint directory",
               index_path, tensor, f);
    auto [it, inserted] = shard_of_file.emplace(f, shards_.size());
    if (inserted) shards_.push_back(std::make_unique<SafetensorsFile>((dir / fp).string()));
    const SafetensorsFile& shard = *shards_[it->second];
    ATOM_CHECK(shard.has(tensor), "{}: weight_map says '{}' is in '{}', but that shard lacks it",
               index_path, tensor, shard.path());
    where_[tensor] = it->second;
  }
}

bool SafetensorsCheckpoint::has(const std::string& name) const { return where_.count(name) != 0; }

Tensor SafetensorsCheckpoint::get(const std::string& name) const {
  auto it = where_.find(name);
  ATOM_CHECK(it != where_.end(), "checkpoint {}: no tensor named '{}'",
             shards_.empty() ? std::string("?") : shards_[0]->path(), name);
  return shards_[it->second]->get(name);
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, s] : where_) out.push_back(name);
  return out;
}

std::map<std::string, std::string> SafetensorsCheckpoint::metadata() const {
  std::map<std::string, std::string> out;
  for (const auto& s : shards_)
    for (const auto& [k, v] : s->metadata()) out.emplace(k, v);  // first shard wins on conflicts
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer

namespace {

void write_all(int fd, const void* p, size_t n, const std::string& tmp) {
  const uint8_t* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, b, n);
    if (w < 0 && errno == EINTR) continue;
    ATOM_CHECK(w > 0, "cannot write '{}': {}", tmp, std::strerror(errno));
    b += w;
    n -= size_t(w);
  }
}

}  // namespace

void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Data layout: tensors sorted (stably) by descending element size, so every tensor starts at
  // a multiple of its element size (the header is padded to 8) and the data section has no
  // gaps, as the reference implementation requires. The header lists them in the given order.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].second.dtype) > dtype_size(tensors[b].second.dtype);
  });
  std::vector<std::pair<size_t, size_t>> offsets(tensors.size());
  size_t pos = 0;
  for (size_t i : order) {
    const Tensor& t = tensors[i].second;
    for (int64_t d : t.shape)
      ATOM_CHECK(d >= 0, "write_safetensors '{}': tensor '{}' has negative shape {}", path,
                 tensors[i].first, t.shape_str());
    const size_t nb = t.nbytes();
    ATOM_CHECK(nb == 0 || t.data != nullptr, "write_safetensors '{}': tensor '{}' has no data", path,
               tensors[i].first);
    offsets[i] = {pos, pos + nb};
    pos += nb;
  }

  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    ATOM_CHECK(name != "__metadata__" && !h.contains(name),
               "write_safetensors '{}': duplicate or reserved tensor name '{}'", path, name);
    h[name] = {{"dtype", std::string(dtype_name(t.dtype))},
               {"shape", t.shape},
               {"data_offsets", {offsets[i].first, offsets[i].second}}};
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');  // pad with spaces, as the reference does
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ATOM_CHECK(fd >= 0, "cannot create '{}': {}", tmp, std::strerror(errno));
  try {
    write_all(fd, len, 8, tmp);
    write_all(fd, header.data(), header.size(), tmp);
    for (size_t i : order) write_all(fd, tensors[i].second.data, tensors[i].second.nbytes(), tmp);
    ATOM_CHECK(::fsync(fd) == 0, "cannot fsync '{}': {}", tmp, std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("cannot close '{}': {}", tmp, std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    fail("cannot rename '{}' to '{}': {}", tmp, path, std::strerror(err));
  }
}

}  // namespace atom::io
