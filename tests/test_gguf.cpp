// GGUF reader tests: metadata of every value type, dequantization against an independent
// brute-force decoder (written here from the ggml block spec), config_from_gguf, the real
// SmolLM2 model, and malformed files (each must throw atom::Error, never crash).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/io/hf_config.h"
#include "gguf_test_writer.h"
#include "test_util.h"

using atom::io::GgufFile;
using atom::testing::GgufBuilder;
namespace tw = atom::testing;
using atom::test::expect_error;

namespace {

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 8, kQ4_K = 12, kBF16 = 30;

// A parsed in-memory file that owns its bytes (from_buffer needs them to outlive the reader).
struct OpenGguf {
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  std::unique_ptr<GgufFile> file;
  GgufFile* operator->() const { return file.get(); }
  GgufFile& operator*() const { return *file; }
};
OpenGguf open(std::vector<uint8_t> b, const std::string& name = "test.gguf") {
  auto bytes = std::make_shared<const std::vector<uint8_t>>(std::move(b));
  auto file = GgufFile::from_buffer(bytes->data(), bytes->size(), name);
  return {std::move(bytes), std::move(file)};
}

// ---- independent reference decoders (from the format spec, not from src/) ----
float ref_half_slow(uint16_t h) {
  const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  const double v = e == 0 ? m * std::ldexp(1.0, -24) : (1024 + m) * std::ldexp(1.0, e - 25);
  return float(s ? -v : v);  // exact: every finite fp16 is representable in fp32
}
float ref_half(const uint8_t* p) {
  // Table of all 65536 values (the real-model test decodes 135M elements).
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = ref_half_slow(uint16_t(h));
    return t;
  }();
  return table[uint16_t(p[0] | (p[1] << 8))];
}
float ref_bf16(const uint8_t* p) {
  const uint32_t u = uint32_t(p[0] | (p[1] << 8)) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Element i of a tensor of `type` stored in `raw`.
float ref_elem(uint32_t type, const uint8_t* raw, int64_t i) {
  const int64_t blk = i / 32, j = i % 32;
  switch (type) {
    case kF32: { float f; std::memcpy(&f, raw + 4 * i, 4); return f; }
    case kF16: return ref_half(raw + 2 * i);
    case kBF16: return ref_bf16(raw + 2 * i);
    case kQ8_0: {
      const uint8_t* b = raw + blk * 34;
      return float(int8_t(b[2 + j])) * ref_half(b);
    }
    case kQ4_0: {
      const uint8_t* b = raw + blk * 18;
      const int nib = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
      return float(nib - 8) * ref_half(b);
    }
    case kQ4_1: {
      const uint8_t* b = raw + blk * 20;
      const int nib = j < 16 ? (b[4 + j] & 15) : (b[4 + j - 16] >> 4);
      return float(nib) * ref_half(b) + ref_half(b + 2);
    }
  }
  ADD_FAILURE() << "ref_elem: type " << type;
  return 0;
}

size_t raw_size(uint32_t type, int64_t n) {
  switch (type) {
    case kF32: return 4 * n;
    case kF16: case kBF16: return 2 * n;
    case kQ8_0: return n / 32 * 34;
    case kQ4_0: return n / 32 * 18;
    case kQ4_1: return n / 32 * 20;
  }
  return 0;
}

// Random finite fp16 bits (normal and subnormal, never inf/NaN).
uint16_t rand_half(std::mt19937& rng) {
  for (;;) {
    const uint16_t h = uint16_t(rng());
    if (((h >> 10) & 31) != 31) return h;
  }
}

// Random raw bytes for n elements of `type`; block scales are random finite fp16 values.
std::vector<uint8_t> rand_raw(uint32_t type, int64_t n, std::mt19937& rng) {
  std::vector<uint8_t> b(raw_size(type, n));
  for (auto& x : b) x = uint8_t(rng());
  auto set_half = [&](size_t off) {
    const uint16_t h = rand_half(rng);
    b[off] = uint8_t(h);
    b[off + 1] = uint8_t(h >> 8);
  };
  if (type == kF32) {
    std::normal_distribution<float> nd(0.f, 3.f);
    for (int64_t i = 0; i < n; ++i) { float f = nd(rng); std::memcpy(&b[4 * i], &f, 4); }
  } else if (type == kF16) {
    for (int64_t i = 0; i < n; ++i) set_half(2 * i);
  } else if (type == kBF16) {
    for (int64_t i = 0; i < n; ++i) { b[2 * i + 1] = uint8_t(rng() % 0x7f) | (rng() & 0x80); }
  } else {
    const size_t bs = type == kQ8_0 ? 34 : type == kQ4_0 ? 18 : 20;
    for (size_t o = 0; o < b.size(); o += bs) {
      set_half(o);
      if (type == kQ4_1) set_half(o + 2);
    }
  }
  return b;
}

void expect_bits_equal(const float* got, uint32_t type, const uint8_t* raw, int64_t n) {
  int64_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float want = ref_elem(type, raw, i);
    if (std::memcmp(&want, &got[i], 4) != 0 && ++bad <= 5)
      ADD_FAILURE() << atom::io::ggml_type_name(type) << " element " << i << ": got " << got[i]
                    << " want " << want;
  }
  EXPECT_EQ(bad, 0) << "mismatches in " << n << " elements of " << atom::io::ggml_type_name(type);
}

// A small valid file with metadata and two tensors; used for truncation tests.
std::vector<uint8_t> small_valid_file(std::mt19937& rng) {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama");
  g.kv_u32("llama.block_count", 2);
  g.kv_str_array("tokenizer.ggml.tokens", {"a", "bc", "<s>"});
  g.kv_array<float>("some.floats", tw::GV_F32, {1.5f, -2.f});
  g.tensor("a", {32, 2}, kQ4_1, rand_raw(kQ4_1, 64, rng));
  g.tensor("b", {3}, kF32, rand_raw(kF32, 3, rng));
  return g.build();
}

}  // namespace

TEST(Gguf, MetadataAllValueTypes) {
  GgufBuilder g;
  g.kv<uint8_t>("u8", tw::GV_U8, 200);
  g.kv<int8_t>("i8", tw::GV_I8, -100);
  g.kv<uint16_t>("u16", tw::GV_U16, 60000);
  g.kv<int16_t>("i16", tw::GV_I16, -30000);
  g.kv<uint32_t>("u32", tw::GV_U32, 4000000000u);
  g.kv<int32_t>("i32", tw::GV_I32, -2000000000);
  g.kv<uint64_t>("u64", tw::GV_U64, 1ull << 40);
  g.kv<int64_t>("i64", tw::GV_I64, -(1ll << 50));
  g.kv<float>("f32", tw::GV_F32, 0.25f);
  g.kv<double>("f64", tw::GV_F64, -1e300);
  g.kv_bool("flag", true);
  g.kv_str("s", "héllo");
  g.kv_str("empty", "");
  g.kv_str_array("strs", {"x", "", "<|im_start|>"});
  g.kv_array<int32_t>("ints", tw::GV_I32, {1, -2, 3});
  g.kv_array<uint8_t>("u8s", tw::GV_U8, {0, 255});
  g.kv_array<double>("f64s", tw::GV_F64, {0.5, 1e-10});
  g.kv_array<float>("f32s", tw::GV_F32, {});
  g.kv_array<uint8_t>("bools", tw::GV_BOOL, {1, 0, 1});
  for (uint32_t version : {2u, 3u}) {
    g.version = version;
    auto f = open(g.build());
    EXPECT_EQ(f->version(), version);
    EXPECT_EQ(f->metadata().size(), 19u);
    EXPECT_EQ(f->get_int("u8"), 200);
    EXPECT_EQ(f->get_int("i8"), -100);
    EXPECT_EQ(f->get_int("u16"), 60000);
    EXPECT_EQ(f->get_int("i16"), -30000);
    EXPECT_EQ(f->get_int("u32"), 4000000000ll);
    EXPECT_EQ(f->get_int("i32"), -2000000000);
    EXPECT_EQ(f->get_int("u64"), 1ll << 40);
    EXPECT_EQ(f->get_int("i64"), -(1ll << 50));
    EXPECT_EQ(f->get_float("f32"), 0.25);
    EXPECT_EQ(f->get_float("f64"), -1e300);
    EXPECT_EQ(f->get_float("u8"), 200.0);  // integers convert to float
    EXPECT_TRUE(f->get_bool_or("flag", false));
    EXPECT_EQ(f->get_string("s"), "héllo");
    EXPECT_EQ(f->get_string("empty"), "");
    EXPECT_EQ(f->get_string_array("strs"), (std::vector<std::string>{"x", "", "<|im_start|>"}));
    EXPECT_EQ(f->get_int_array("ints"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->get_int_array("u8s"), (std::vector<int64_t>{0, 255}));
    EXPECT_EQ(f->get_float_array("f64s"), (std::vector<double>{0.5, 1e-10}));
    EXPECT_TRUE(f->get_float_array("f32s").empty());
    const auto& bools = std::get<std::vector<bool>>(std::get<atom::io::GgufArray>(f->metadata().at("bools")));
    EXPECT_EQ(bools, (std::vector<bool>{true, false, true}));
    // defaults and wrong types
    EXPECT_EQ(f->get_int_or("missing", 7), 7);
    EXPECT_EQ(f->get_string_or("missing", "d"), "d");
    EXPECT_EQ(f->get_float_or("missing", 1.5), 1.5);
    expect_error([&] { f->get_int("s"); }, {"'s'", "string", "integer"});
    expect_error([&] { f->get_int_or("f32", 0); }, {"'f32'", "float"});
    expect_error([&] { f->get_string("u8"); }, {"'u8'"});
    expect_error([&] { f->get_string("missing"); }, {"missing", "test.gguf"});
    expect_error([&] { f->get_bool_or("u8", false); }, {"'u8'"});
    expect_error([&] { f->get_string_array("ints"); }, {"'ints'", "integer array"});
    expect_error([&] { f->tensor_info("nope"); }, {"nope"});
  }
}

TEST(Gguf, DequantMatchesBruteForce) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  for (uint64_t alignment : {32u, 64u, 8u}) {
    SCOPED_TRACE(fmt::format("alignment {}", alignment));
    GgufBuilder g;
    if (alignment != 32) {
      g.alignment = alignment;
      g.kv_u32("general.alignment", uint32_t(alignment));
    }
    struct Case { std::string name; std::vector<uint64_t> dims; uint32_t type; std::vector<uint8_t> raw; };
    std::vector<Case> cases;
    for (uint32_t type : {kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1}) {
      const bool q = type == kQ8_0 || type == kQ4_0 || type == kQ4_1;
      const uint64_t row = q ? 32 * (1 + rng() % 5) : 1 + rng() % 70;
      const uint64_t rows = 1 + rng() % 7, planes = 1 + rng() % 3;
      std::vector<uint64_t> dims = {row, rows};
      if (rng() % 2) dims.push_back(planes);
      int64_t n = 1;
      for (auto d : dims) n *= int64_t(d);
      auto raw = rand_raw(type, n, rng);
      const std::string name = "t." + atom::io::ggml_type_name(type);
      g.tensor(name, dims, type, raw);
      cases.push_back({name, dims, type, std::move(raw)});
    }
    auto f = open(g.build());
    ASSERT_EQ(f->tensors().size(), cases.size());
    for (const auto& c : cases) {
      SCOPED_TRACE(c.name);
      const auto& ti = f->tensor_info(c.name);
      EXPECT_EQ(ti.type, c.type);
      EXPECT_EQ(ti.nbytes, c.raw.size());
      auto bytes = f->tensor_bytes(c.name);
      ASSERT_EQ(bytes.size(), c.raw.size());
      EXPECT_EQ(std::memcmp(bytes.data(), c.raw.data(), c.raw.size()), 0);
      atom::Tensor t = f->get_f32(c.name);
      std::vector<int64_t> shape(c.dims.rbegin(), c.dims.rend());  // PyTorch order
      EXPECT_EQ(t.shape, shape);
      EXPECT_EQ(t.dtype, atom::DType::F32);
      expect_bits_equal(t.as<float>(), c.type, c.raw.data(), t.numel());
    }
  }
}

TEST(Gguf, DequantizeRowDirect) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  for (uint32_t type : {kQ8_0, kQ4_0, kQ4_1}) {
    const int64_t n = 32 * 200;
    auto raw = rand_raw(type, n, rng);
    std::vector<float> out(n);
    atom::io::dequantize_row(type, raw.data(), out.data(), n);
    expect_bits_equal(out.data(), type, raw.data(), n);
    expect_error([&] { atom::io::dequantize_row(type, raw.data(), out.data(), 33); }, {"multiple"});
  }
  std::vector<float> out(256);
  std::vector<uint8_t> raw(144);
  expect_error([&] { atom::io::dequantize_row(kQ4_K, raw.data(), out.data(), 256); }, {"Q4_K"});
}

TEST(Gguf, UnsupportedTypeNamedInError) {
  std::mt19937 rng(std::random_device{}());
  GgufBuilder g;
  std::vector<uint8_t> q4k(2 * 144);
  for (auto& x : q4k) x = uint8_t(rng());
  g.tensor("blk.0.attn_q.weight", {256, 2}, kQ4_K, q4k);
  g.tensor("ok", {32}, kQ8_0, rand_raw(kQ8_0, 32, rng));
  auto f = open(g.build(), "model-q4k.gguf");
  // The file opens (metadata and other tensors stay usable); only the Q4_K tensor fails.
  EXPECT_EQ(f->tensor_info("blk.0.attn_q.weight").nbytes, 288u);
  EXPECT_NO_THROW(f->get_f32("ok"));
  expect_error([&] { f->get_f32("blk.0.attn_q.weight"); },
               {"blk.0.attn_q.weight", "Q4_K", "model-q4k.gguf"});
  EXPECT_EQ(atom::io::ggml_type_name(12), "Q4_K");
  EXPECT_EQ(atom::io::ggml_type_name(3), "Q4_1");
}

TEST(Gguf, EveryTruncationThrows) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE(fmt::format("seed {}", seed));
  std::mt19937 rng(seed);
  const auto full = small_valid_file(rng);
  ASSERT_NO_THROW(open(full));
  for (size_t len = 0; len < full.size(); ++len) {
    // Copy into an exactly-sized buffer so ASan would catch any read past `len`.
    std::vector<uint8_t> cut(full.begin(), full.begin() + len);
    EXPECT_THROW(GgufFile::from_buffer(cut.data(), cut.size()), atom::Error) << "prefix " << len;
  }
}

TEST(Gguf, BadHeaders) {
  std::mt19937 rng(std::random_device{}());
  auto base = small_valid_file(rng);
  auto patched = [&](size_t off, std::vector<uint8_t> bytes) {
    auto b = base;
    std::copy(bytes.begin(), bytes.end(), b.begin() + off);
    return b;
  };
  expect_error([&] { open(patched(0, {'G', 'G', 'M', 'L'})); }, {"magic"});
  expect_error([&] { open(patched(4, {1, 0, 0, 0})); }, {"version 1"});
  expect_error([&] { open(patched(4, {4, 0, 0, 0})); }, {"version 4"});
  expect_error([&] { open(patched(4, {0, 0, 0, 3})); }, {"big-endian"});
  // absurd counts: tensor count at offset 8, kv count at 16
  expect_error([&] { open(patched(8, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})); },
               {"tensor count"});
  expect_error([&] { open(patched(16, {0, 0, 0, 0, 1, 0, 0, 0})); }, {"metadata count"});
  expect_error([&] { open(patched(16, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f})); },
               {"metadata count"});
  // first key length at offset 24
  expect_error([&] { open(patched(24, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})); },
               {"length"});
  expect_error([&] { open(patched(24, {0, 0, 0, 0, 0, 1, 0, 0})); }, {"length"});
}

TEST(Gguf, BadMetadata) {
  auto build_kv = [](auto fill) {
    GgufBuilder g;
    fill(g);
    return g.build();
  };
  using B = std::vector<uint8_t>;
  auto arr = [](uint32_t et, uint64_t n, B tail = {}) {
    B b;
    GgufBuilder::put<uint32_t>(b, et);
    GgufBuilder::put<uint64_t>(b, n);
    b.insert(b.end(), tail.begin(), tail.end());
    return b;
  };
  // array length overflow: 2^61 u64s (n * 8 wraps to 0) and 2^64-1 strings
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", tw::GV_ARRAY, arr(tw::GV_U64, 1ull << 61)); })); },
               {"'a'", "array"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", tw::GV_ARRAY, arr(tw::GV_STRING, ~0ull)); })); },
               {"'a'"});
  // array of strings whose second string claims a huge length
  {
    B tail;
    GgufBuilder::put_str(tail, "ok");
    GgufBuilder::put<uint64_t>(tail, 1ull << 40);
    expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", tw::GV_ARRAY, arr(tw::GV_STRING, 2, tail)); })); },
                 {"length"});
  }
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", tw::GV_ARRAY, arr(tw::GV_ARRAY, 1, arr(tw::GV_U8, 0))); })); },
               {"nested"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", tw::GV_ARRAY, arr(77, 0)); })); },
               {"element type 77"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_raw("a", 13, B{1, 2, 3, 4}); })); },
               {"value type 13"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv<uint8_t>("b", tw::GV_BOOL, 2); })); },
               {"bool"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_u32("k", 1); g.kv_u32("k", 2); })); },
               {"duplicate", "'k'"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_u32("general.alignment", 3); })); },
               {"alignment"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_u32("general.alignment", 0); })); },
               {"alignment"});
  expect_error([&] { open(build_kv([&](GgufBuilder& g) { g.kv_str("general.alignment", "32"); })); },
               {"alignment"});
}

TEST(Gguf, BadTensorInfos) {
  std::mt19937 rng(std::random_device{}());
  auto one = [&](std::vector<uint64_t> dims, uint32_t type, std::vector<uint8_t> data,
                 int64_t off = -1) {
    GgufBuilder g;
    g.tensor("w", std::move(dims), type, std::move(data), off);
    return g.build();
  };
  const auto q = rand_raw(kQ8_0, 64, rng);
  expect_error([&] { open(one({32, 1, 1, 1, 2}, kQ8_0, q)); }, {"'w'", "n_dims 5"});
  expect_error([&] { open(one({}, kQ8_0, q)); }, {"n_dims 0"});
  expect_error([&] { open(one({32, 0}, kQ8_0, q)); }, {"'w'", "dimension"});
  expect_error([&] { open(one({32, ~0ull}, kQ8_0, q)); }, {"'w'"});
  expect_error([&] { open(one({1ull << 32, 1ull << 32, 1ull << 32}, kF32, q)); }, {"'w'", "overflow"});
  expect_error([&] { open(one({32, 2}, 99, q)); }, {"'w'", "unknown ggml type 99"});
  expect_error([&] { open(one({48, 2}, kQ8_0, q)); }, {"'w'", "multiple", "Q8_0"});
  expect_error([&] { open(one({32, 3}, kQ8_0, q)); }, {"'w'", "past the end"});  // data too short
  expect_error([&] { open(one({32, 2}, kQ8_0, q, 1ll << 40)); }, {"'w'", "past the end"});
  expect_error([&] { open(one({32, 2}, kQ8_0, q, 8)); }, {"'w'", "aligned"});
  {
    GgufBuilder g;
    g.tensor("w", {32}, kQ8_0, rand_raw(kQ8_0, 32, rng));
    g.tensor("w", {32}, kQ8_0, rand_raw(kQ8_0, 32, rng));
    expect_error([&] { open(g.build()); }, {"duplicate", "'w'"});
  }
  {
    GgufBuilder g;  // more tensors announced than written
    g.tensor("w", {32}, kQ8_0, rand_raw(kQ8_0, 32, rng));
    g.n_tensors_override = 3;
    EXPECT_THROW(open(g.build()), atom::Error);
  }
  {
    GgufBuilder g;  // more key/values announced than written
    g.kv_u32("a", 1);
    g.n_kv_override = 2;
    EXPECT_THROW(open(g.build()), atom::Error);
  }
}

TEST(Gguf, EmptyFileWithoutTensors) {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama");
  auto f = open(g.build());  // no data section padding needed without tensors
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(f->get_string("general.architecture"), "llama");
}

namespace {
GgufBuilder llama_builder(std::mt19937& rng, bool with_output = false) {
  GgufBuilder g;
  g.kv_str("general.architecture", "llama");
  g.kv_u32("llama.block_count", 4);
  g.kv_u32("llama.embedding_length", 256);
  g.kv_u32("llama.feed_forward_length", 688);
  g.kv_u32("llama.attention.head_count", 8);
  g.kv_u32("llama.attention.head_count_kv", 2);
  g.kv_f32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
  g.kv_f32("llama.rope.freq_base", 500000.f);
  g.kv_u32("llama.context_length", 4096);
  g.kv_str_array("tokenizer.ggml.tokens", {"<unk>", "<s>", "</s>", "a", "b"});
  g.kv_u32("tokenizer.ggml.bos_token_id", 1);
  g.kv_u32("tokenizer.ggml.eos_token_id", 2);
  g.tensor("token_embd.weight", {256, 5}, kQ8_0, rand_raw(kQ8_0, 256 * 5, rng));
  if (with_output) g.tensor("output.weight", {256, 5}, kQ8_0, rand_raw(kQ8_0, 256 * 5, rng));
  return g;
}
}  // namespace

TEST(Gguf, ConfigFromSyntheticLlama) {
  std::mt19937 rng(std::random_device{}());
  {
    auto bytes = llama_builder(rng).build();
    auto cfg = atom::io::config_from_gguf(*open(bytes));
    EXPECT_EQ(cfg.architecture, "llama");
    EXPECT_EQ(cfg.num_layers, 4);
    EXPECT_EQ(cfg.hidden_size, 256);
    EXPECT_EQ(cfg.intermediate_size, 688);
    EXPECT_EQ(cfg.num_heads, 8);
    EXPECT_EQ(cfg.num_kv_heads, 2);
    EXPECT_EQ(cfg.head_dim, 32);
    EXPECT_EQ(cfg.vocab_size, 5);  // from the token list
    EXPECT_EQ(cfg.max_position_embeddings, 4096);
    EXPECT_FLOAT_EQ(cfg.rms_norm_eps, 1e-6f);
    EXPECT_FLOAT_EQ(cfg.rope_theta, 500000.f);
    EXPECT_EQ(cfg.rope_scaling.type, atom::RopeScaling::Type::None);
    EXPECT_TRUE(cfg.tie_word_embeddings);
    EXPECT_EQ(cfg.bos_token_id, 1);
    EXPECT_EQ(cfg.eos_token_id, 2);
  }
  {
    auto g = llama_builder(rng, true);
    g.kv_u32("llama.vocab_size", 5);
    g.kv_u32("llama.attention.key_length", 64);
    g.kv_str("llama.rope.scaling.type", "linear");
    g.kv_f32("llama.rope.scaling.factor", 4.f);
    auto cfg = atom::io::config_from_gguf(*open(g.build()));
    EXPECT_FALSE(cfg.tie_word_embeddings);
    EXPECT_EQ(cfg.head_dim, 64);
    EXPECT_EQ(cfg.rope_scaling.type, atom::RopeScaling::Type::Linear);
    EXPECT_FLOAT_EQ(cfg.rope_scaling.factor, 4.f);
  }
}

TEST(Gguf, ConfigFromGgufErrors) {
  std::mt19937 rng(std::random_device{}());
  {
    GgufBuilder g;
    g.kv_str("general.architecture", "gpt2");
    expect_error([&] { atom::io::config_from_gguf(*open(g.build(), "gpt2.gguf")); },
                 {"unsupported architecture 'gpt2'", "gpt2.gguf", "supported: llama"});
  }
  {
    GgufBuilder g;
    expect_error([&] { atom::io::config_from_gguf(*open(g.build())); }, {"general.architecture"});
  }
  {
    GgufBuilder g;  // missing block_count
    g.kv_str("general.architecture", "llama");
    g.kv_u32("llama.embedding_length", 256);
    expect_error([&] { atom::io::config_from_gguf(*open(g.build(), "m.gguf")); },
                 {"llama.block_count", "m.gguf"});
  }
  {
    auto g = llama_builder(rng);
    g.kv_str("llama.rope.scaling.type", "yarn");
    expect_error([&] { atom::io::config_from_gguf(*open(g.build())); }, {"yarn"});
  }
  {
    auto g = llama_builder(rng);
    g.kv_u32("llama.rope.dimension_count", 16);  // partial rotary (head_dim is 32)
    expect_error([&] { atom::io::config_from_gguf(*open(g.build())); }, {"rope.dimension_count"});
  }
  {
    auto g = llama_builder(rng);
    g.kv_str("llama.vocab_size", "many");  // wrong type
    expect_error([&] { atom::io::config_from_gguf(*open(g.build())); }, {"llama.vocab_size", "string"});
  }
}

// ---- the real model ----

TEST(Gguf, RealModelSmolLM2) {
  const std::string path = std::string(ATOM_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path))
    GTEST_SKIP() << "real model not found at " << path << " (scripts/setup.sh downloads it)";
  GgufFile f(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.tensors().size(), 272u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges").size(), 48900u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").size(), 49152u);

  const auto cfg = atom::io::config_from_gguf(f);
  EXPECT_EQ(cfg.num_layers, 30);
  EXPECT_EQ(cfg.hidden_size, 576);
  EXPECT_EQ(cfg.intermediate_size, 1536);
  EXPECT_EQ(cfg.num_heads, 9);
  EXPECT_EQ(cfg.num_kv_heads, 3);
  EXPECT_EQ(cfg.head_dim, 64);
  EXPECT_EQ(cfg.vocab_size, 49152);
  EXPECT_EQ(cfg.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(cfg.rope_theta, 100000.f);
  EXPECT_FLOAT_EQ(cfg.rms_norm_eps, 1e-5f);
  EXPECT_TRUE(cfg.tie_word_embeddings);
  EXPECT_EQ(cfg.bos_token_id, 1);
  EXPECT_EQ(cfg.eos_token_id, 2);

  auto expect_info = [&](const std::string& name, uint32_t type, std::vector<int64_t> shape) {
    const auto& ti = f.tensor_info(name);
    EXPECT_EQ(ti.type, type) << name;
    EXPECT_EQ(ti.shape(), shape) << name;
  };
  expect_info("token_embd.weight", kQ8_0, {49152, 576});
  expect_info("blk.0.attn_q.weight", kQ4_1, {576, 576});
  expect_info("blk.0.attn_k.weight", kQ4_1, {192, 576});
  expect_info("blk.0.attn_v.weight", kQ4_1, {192, 576});
  expect_info("blk.29.ffn_down.weight", kQ4_1, {576, 1536});
  expect_info("blk.29.ffn_gate.weight", kQ4_1, {1536, 576});
  expect_info("output_norm.weight", kF32, {576});
  EXPECT_FALSE(f.has_tensor("output.weight"));

  // Every tensor dequantized by the reader matches the brute-force decoder bit for bit.
  size_t total = 0;
  for (const auto& ti : f.tensors()) {
    SCOPED_TRACE(ti.name);
    atom::Tensor t = f.get_f32(ti.name);
    auto raw = f.tensor_bytes(ti.name);
    ASSERT_EQ(raw.size(), raw_size(ti.type, t.numel()));
    expect_bits_equal(t.as<float>(), ti.type, raw.data(), t.numel());
    total += size_t(t.numel());
    if (HasFailure()) break;
  }
  EXPECT_GT(total, 130'000'000u);
}
