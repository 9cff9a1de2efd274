// safetensors tests: bit-exact write/read round trips for every dtype, sharded checkpoints, and
// malformed files (each must throw atom::Error naming the problem, never crash).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "atom/core/error.h"
#include "atom/io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using atom::DType;
using atom::Tensor;
using atom::io::SafetensorsCheckpoint;
using atom::io::SafetensorsFile;
using atom::test::expect_error;

namespace {

// A fresh temporary directory, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           fmt::format("atom_st_{}_{}", ::getpid(), std::random_device{}());
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

// Random tensor of `dt`: random bytes (never all zero), with finite values for float types.
Tensor random_tensor(DType dt, std::vector<int64_t> shape, std::mt19937& rng) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<uint8_t> b(size_t(n) * atom::dtype_size(dt));
  for (auto& x : b) x = uint8_t(rng());
  if (dt == DType::F32) {
    std::normal_distribution<float> nd(0.f, 2.f);
    for (int64_t i = 0; i < n; ++i) { float f = nd(rng); std::memcpy(&b[4 * i], &f, 4); }
  }
  if (!b.empty()) b[0] |= 1;  // never all zero
  return Tensor::from_bytes(dt, std::move(shape), std::move(b));
}

// Same byte count and bytes (memcmp is not called on empty tensors, whose data may be null).
bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && (a.nbytes() == 0 || std::memcmp(a.data, b.data, a.nbytes()) == 0);
}

std::vector<uint8_t> read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Builds a file from a header JSON text and a data section.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes = 0) {
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(uint8_t(i * 7 + 1));
  return b;
}

std::unique_ptr<SafetensorsFile> open(const std::vector<uint8_t>& b) {
  return SafetensorsFile::from_buffer(b.data(), b.size(), "bad.safetensors");
}

const DType kAllDtypes[] = {DType::F32, DType::F16, DType::BF16, DType::I8,
                            DType::U8,  DType::I32, DType::I64};

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> ts;
  // Odd sizes interleaved across dtypes exercise the writer's alignment-preserving layout.
  for (DType dt : kAllDtypes) {
    const std::string base = std::string(atom::dtype_name(dt));
    ts.emplace_back("model." + base + ".w", random_tensor(dt, {int64_t(1 + rng() % 9), int64_t(1 + rng() % 13)}, rng));
    ts.emplace_back("model." + base + ".v", random_tensor(dt, {int64_t(1 + rng() % 17)}, rng));
    ts.emplace_back("model." + base + ".scalar", random_tensor(dt, {}, rng));
    ts.emplace_back("model." + base + ".empty", random_tensor(dt, {0, 3}, rng));
  }
  std::shuffle(ts.begin(), ts.end(), rng);
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"atom.note", "ü \"quoted\""}};
  const std::string path = dir / "model.safetensors";
  atom::io::write_safetensors(path, ts, meta);
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));

  // File layout: header length is a multiple of 8, padded with spaces.
  const auto bytes = read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  EXPECT_EQ(n % 8, 0u);
  EXPECT_NE(bytes[8 + n - 1], '\0');

  SafetensorsFile f(path);
  EXPECT_EQ(f.metadata(), meta);
  EXPECT_EQ(f.names().size(), ts.size());
  for (const auto& [name, t] : ts) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.has(name));
    Tensor g = f.get(name);
    EXPECT_EQ(g.dtype, t.dtype);
    EXPECT_EQ(g.shape, t.shape);
    ASSERT_EQ(g.nbytes(), t.nbytes());
    ASSERT_NE(g.data, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(g.data) % atom::dtype_size(g.dtype), 0u);
    EXPECT_TRUE(same_bytes(g, t));
  }
  // Zero-copy views keep the mapping alive after the file object is gone.
  Tensor kept;
  {
    SafetensorsFile f2(path);
    kept = f2.get(ts[0].first);
  }
  EXPECT_TRUE(same_bytes(kept, ts[0].second));

  // Writing the read-back tensors reproduces the file byte for byte.
  std::vector<std::pair<std::string, Tensor>> again;
  for (const auto& [name, t] : ts) again.emplace_back(name, f.get(name));
  atom::io::write_safetensors(dir / "again.safetensors", again, meta);
  EXPECT_EQ(read_file(dir / "again.safetensors"), bytes);

  // The same file through the checkpoint interface (file path and directory).
  for (const std::string& p : {path, dir.path.string()}) {
    SafetensorsCheckpoint ck(p);
    EXPECT_EQ(ck.names(), f.names());
    EXPECT_EQ(ck.metadata(), meta);
    EXPECT_TRUE(same_bytes(ck.get(ts[1].first), ts[1].second));
  }
  expect_error([&] { f.get("nope"); }, {"nope"});
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  std::mt19937 rng(std::random_device{}());
  auto t = random_tensor(DType::F32, {2, 2}, rng);
  expect_error([&] { atom::io::write_safetensors(dir / "x.safetensors", {{"a", t}, {"a", t}}); },
               {"duplicate", "'a'"});
  expect_error([&] { atom::io::write_safetensors(dir / "x.safetensors", {{"__metadata__", t}}); },
               {"__metadata__"});
  expect_error([&] { atom::io::write_safetensors(dir / "no/such/dir/x.safetensors", {{"a", t}}); },
               {"no/such/dir"});
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
}

TEST(Safetensors, ShardedIndex) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  std::vector<std::pair<std::string, Tensor>> s1 = {
      {"model.embed_tokens.weight", random_tensor(DType::BF16, {11, 8}, rng)},
      {"model.layers.0.self_attn.q_proj.weight", random_tensor(DType::F16, {8, 8}, rng)}};
  std::vector<std::pair<std::string, Tensor>> s2 = {
      {"model.layers.1.mlp.up_proj.weight", random_tensor(DType::F32, {5, 8}, rng)},
      {"lm_head.weight", random_tensor(DType::BF16, {11, 8}, rng)}};
  atom::io::write_safetensors(dir / "model-00001-of-00002.safetensors", s1, {{"format", "pt"}});
  atom::io::write_safetensors(dir / "model-00002-of-00002.safetensors", s2, {{"shard", "2"}});
  nlohmann::json idx = {{"metadata", {{"total_size", 1234}}}, {"weight_map", nlohmann::json::object()}};
  for (auto& [n, t] : s1) idx["weight_map"][n] = "model-00001-of-00002.safetensors";
  for (auto& [n, t] : s2) idx["weight_map"][n] = "model-00002-of-00002.safetensors";
  std::ofstream(dir / "model.safetensors.index.json") << idx.dump(2);

  for (const std::string& p : {dir.path.string(), dir / "model.safetensors.index.json"}) {
    SafetensorsCheckpoint ck(p);
    EXPECT_EQ(ck.names().size(), 4u);
    for (const auto* shard : {&s1, &s2})
      for (const auto& [n, t] : *shard) {
        ASSERT_TRUE(ck.has(n)) << n;
        Tensor g = ck.get(n);
        EXPECT_EQ(g.shape, t.shape);
        EXPECT_EQ(g.dtype, t.dtype);
        EXPECT_TRUE(same_bytes(g, t)) << n;
      }
    EXPECT_EQ(ck.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"shard", "2"}}));
    expect_error([&] { ck.get("model.norm.weight"); }, {"model.norm.weight"});
  }

  // Broken indexes.
  auto write_index = [&](const std::string& text) {
    std::ofstream(dir / "bad.index.json") << text;
    return dir / "bad.index.json";
  };
  expect_error([&] { SafetensorsCheckpoint(write_index("{\"weight_map\": ")); }, {"bad.index.json", "JSON"});
  expect_error([&] { SafetensorsCheckpoint(write_index("{\"metadata\": {}}")); }, {"weight_map"});
  expect_error([&] { SafetensorsCheckpoint(write_index(R"({"weight_map": {"a": 3}})")); }, {"'a'"});
  expect_error([&] { SafetensorsCheckpoint(write_index(R"({"weight_map": {"a": "missing.safetensors"}})")); },
               {"missing.safetensors"});
  expect_error([&] { SafetensorsCheckpoint(write_index(R"({"weight_map": {"a": "../x.safetensors"}})")); },
               {"../x.safetensors"});
  expect_error([&] { SafetensorsCheckpoint(write_index(R"({"weight_map": {"a": "/etc/passwd"}})")); },
               {"/etc/passwd"});
  expect_error([&] { SafetensorsCheckpoint(write_index(R"({"weight_map": {"not.there": "model-00002-of-00002.safetensors"}})")); },
               {"not.there", "lacks"});
  TempDir empty;
  expect_error([&] { SafetensorsCheckpoint ck(empty.path.string()); }, {"model.safetensors"});
  expect_error([&] { SafetensorsCheckpoint ck(empty / "none.safetensors"); }, {"none.safetensors"});
}

TEST(Safetensors, EveryTruncationThrows) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  TempDir dir;
  atom::io::write_safetensors(dir / "s.safetensors",
                              {{"a", random_tensor(DType::F16, {3, 5}, rng)},
                               {"b", random_tensor(DType::I32, {4}, rng)}},
                              {{"k", "v"}});
  const auto full = read_file(dir / "s.safetensors");
  ASSERT_NO_THROW(open(full));
  for (size_t len = 0; len < full.size(); ++len) {
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);  // exact size: ASan sees overreads
    EXPECT_THROW(SafetensorsFile::from_buffer(cut.data(), cut.size()), atom::Error) << "prefix " << len;
  }
}

TEST(Safetensors, BadHeaders) {
  // header length: absurd, larger than the file, zero
  {
    auto b = make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
    auto big = b;
    big[7] = 0x7f;
    expect_error([&] { open(big); }, {"header length"});
    auto over = b;
    over[0] = uint8_t(over[0] + 5);
    expect_error([&] { open(over); }, {"exceeds"});
    auto zero = b;
    std::fill(zero.begin(), zero.begin() + 8, 0);
    expect_error([&] { open(zero); }, {"header"});
  }
  expect_error([&] { open(std::vector<uint8_t>{1, 2, 3}); }, {"bad.safetensors"});
  expect_error([&] { open(make_file(R"({"a":{"dtype":"F32",)")); }, {"JSON"});
  expect_error([&] { open(make_file("[1,2,3]")); }, {"{"});
  expect_error([&] { open(make_file("{\"a\": 1}")); }, {"'a'"});
  expect_error([&] { open(make_file("{\"a\": \xff\xfe}")); }, {"JSON"});
}

TEST(Safetensors, BadEntries) {
  auto one = [](const std::string& entry, size_t data) {
    return make_file("{\"w\":" + entry + "}", data);
  };
  expect_error([&] { open(one(R"({"dtype":"F99","shape":[1],"data_offsets":[0,4]})", 4)); },
               {"'w'", "unknown dtype 'F99'"});
  expect_error([&] { open(one(R"({"dtype":"F64","shape":[1],"data_offsets":[0,8]})", 8)); },
               {"'w'", "F64", "not supported"});
  expect_error([&] { open(one(R"({"dtype":7,"shape":[1],"data_offsets":[0,4]})", 4)); }, {"dtype"});
  expect_error([&] { open(one(R"({"shape":[1],"data_offsets":[0,4]})", 4)); }, {"dtype"});
  expect_error([&] { open(one(R"({"dtype":"F32","data_offsets":[0,4]})", 4)); }, {"shape"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1]})", 4)); }, {"data_offsets"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", 4)); },
               {"'w'", "non-negative"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", 4)); },
               {"'w'", "integer"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})", 8)); }, {"'w'"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]})", 4)); },
               {"'w'"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", 4)); },
               {"'w'", "overflow"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,8]})", 4)); },
               {"'w'", "out of range"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})", 8)); },
               {"'w'", "< begin"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", 4)); },
               {"'w'", "needs 8 bytes"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", 4)); }, {"data_offsets"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", 4)); }, {"data_offsets"});
  expect_error([&] { open(one(R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]})", 4)); },
               {"'w'"});
  expect_error([&] { open(make_file(R"({"__metadata__":{"a":1}})")); }, {"__metadata__"});
  expect_error([&] { open(make_file(R"({"__metadata__":[]})")); }, {"__metadata__"});
  expect_error([&] {
    open(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                   R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12));
  }, {"overlap"});
}

TEST(Safetensors, MisalignedTensorIsCopied) {
  // A hand-made file whose F32 tensor starts at an odd offset: reading must not produce a
  // misaligned pointer (typed access would be undefined behaviour).
  std::string h = R"({"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                  R"("f":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  h.append((8 - h.size() % 8) % 8, ' ');  // data section starts 8-aligned, so "f" is at +1
  auto b = make_file(h, 9);
  auto f = open(b);
  Tensor t = f->get("f");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % 4, 0u);
  EXPECT_EQ(std::memcmp(t.data, b.data() + b.size() - 8, 8), 0);
}
