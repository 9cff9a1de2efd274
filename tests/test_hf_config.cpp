// HF config.json -> ModelConfig: the Llama-family configs we support (as published on the Hub),
// and malformed configs (missing/ill-typed fields, unknown architectures), which must throw
// atom::Error naming the field and the source.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "atom/core/error.h"
#include "atom/io/hf_config.h"
#include "test_util.h"

using atom::RopeScaling;
using atom::io::parse_hf_config;
using json = nlohmann::json;
using atom::test::expect_error;

namespace {

// HuggingFaceTB/SmolLM2-135M-Instruct config.json (abridged to the fields that matter).
const char* kSmolLM2 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
  "initializer_range": 0.041666666666666664, "intermediate_size": 1536,
  "max_position_embeddings": 8192, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
  "pad_token_id": 2, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 49152})";

// meta-llama/Llama-3.1-8B-Instruct
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 128256})";

// meta-llama/Llama-2-7b-hf (no num_key_value_heads in the original release)
const char* kLlama2 = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "pad_token_id": 0,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "tie_word_embeddings": false, "torch_dtype": "float16", "use_cache": true,
  "vocab_size": 32000})";

// TinyLlama/TinyLlama-1.1B-Chat-v1.0
const char* kTinyLlama = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 5632, "max_position_embeddings": 2048, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 22, "num_key_value_heads": 4,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 32000})";

// mistralai/Mistral-7B-v0.1 (sliding window) and Mistral-7B-Instruct-v0.2 (null window)
const char* kMistral01 = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
  "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true,
  "vocab_size": 32000})";

json base_json() { return json::parse(kSmolLM2); }

}  // namespace

TEST(HfConfig, SmolLM2) {
  auto c = parse_hf_config(kSmolLM2);
  EXPECT_EQ(c.architecture, "llama");
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_layers, 30);
  EXPECT_EQ(c.num_heads, 9);
  EXPECT_EQ(c.num_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.max_position_embeddings, 8192);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(HfConfig, Llama31WithLlama3RopeAndEosList) {
  auto c = parse_hf_config(kLlama31);
  EXPECT_EQ(c.num_kv_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.f);
  EXPECT_FLOAT_EQ(c.rope_scaling.low_freq_factor, 1.f);
  EXPECT_FLOAT_EQ(c.rope_scaling.high_freq_factor, 4.f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.bos_token_id, 128000);
  EXPECT_EQ(c.eos_token_id, 128001);  // first of the list
  EXPECT_FALSE(c.tie_word_embeddings);
  // older transformers spell it "type"
  auto j = json::parse(kLlama31);
  j["rope_scaling"].erase("rope_type");
  j["rope_scaling"]["type"] = "llama3";
  EXPECT_EQ(parse_hf_config(j.dump()).rope_scaling.type, RopeScaling::Type::Llama3);
}

TEST(HfConfig, Llama2TinyLlamaMistral) {
  auto l2 = parse_hf_config(kLlama2);
  EXPECT_EQ(l2.num_kv_heads, 32);  // default: MHA
  EXPECT_FLOAT_EQ(l2.rope_theta, 10000.f);
  EXPECT_EQ(l2.vocab_size, 32000);
  auto tl = parse_hf_config(kTinyLlama);
  EXPECT_EQ(tl.num_layers, 22);
  EXPECT_EQ(tl.num_kv_heads, 4);
  EXPECT_EQ(tl.head_dim, 64);
  auto m = parse_hf_config(kMistral01);
  EXPECT_EQ(m.architecture, "mistral");
  EXPECT_EQ(m.sliding_window, 4096);
  auto j = json::parse(kMistral01);
  j["sliding_window"] = nullptr;  // v0.2 style
  EXPECT_EQ(parse_hf_config(j.dump()).sliding_window, 0);
  j.erase("model_type");  // architectures alone identify it
  EXPECT_EQ(parse_hf_config(j.dump()).architecture, "mistral");
}

TEST(HfConfig, OptionalFieldsAndDefaults) {
  auto j = base_json();
  for (const char* k : {"num_key_value_heads", "tie_word_embeddings", "rope_theta", "rms_norm_eps",
                        "rope_scaling", "bos_token_id", "eos_token_id", "max_position_embeddings"})
    j.erase(k);
  auto c = parse_hf_config(j.dump());
  EXPECT_EQ(c.num_kv_heads, 9);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.f);
  EXPECT_FLOAT_EQ(c.rms_norm_eps, 1e-6f);
  EXPECT_EQ(c.bos_token_id, -1);
  EXPECT_EQ(c.max_position_embeddings, 2048);

  j = base_json();
  j["head_dim"] = 128;  // explicit head_dim != hidden / heads
  EXPECT_EQ(parse_hf_config(j.dump()).head_dim, 128);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  auto lin = parse_hf_config(j.dump());
  EXPECT_EQ(lin.rope_scaling.type, RopeScaling::Type::Linear);
  EXPECT_FLOAT_EQ(lin.rope_scaling.factor, 2.f);
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_EQ(parse_hf_config(j.dump()).rope_scaling.type, RopeScaling::Type::None);
}

TEST(HfConfig, MissingFieldsNamed) {
  for (const char* k : {"hidden_size", "intermediate_size", "num_hidden_layers",
                        "num_attention_heads", "vocab_size"}) {
    auto j = base_json();
    j.erase(k);
    expect_error([&] { parse_hf_config(j.dump(), "smol/config.json"); }, {k, "smol/config.json"});
    j[k] = nullptr;
    expect_error([&] { parse_hf_config(j.dump(), "smol/config.json"); }, {k, "smol/config.json"});
  }
  auto j = base_json();
  j.erase("model_type");
  j.erase("architectures");
  expect_error([&] { parse_hf_config(j.dump(), "x.json"); }, {"model_type", "x.json"});
  j = base_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  expect_error([&] { parse_hf_config(j.dump()); }, {"rope_scaling.low_freq_factor"});
  j["rope_scaling"] = {{"factor", 8.0}};
  expect_error([&] { parse_hf_config(j.dump()); }, {"rope_scaling.type"});
}

TEST(HfConfig, WrongTypesNamed) {
  const std::vector<std::pair<const char*, json>> bad = {
      {"hidden_size", "576"},          {"hidden_size", 576.5},
      {"num_hidden_layers", true},     {"vocab_size", json::array({1})},
      {"num_key_value_heads", "3"},    {"rms_norm_eps", "1e-5"},
      {"rope_theta", json::object()},  {"tie_word_embeddings", 1},
      {"eos_token_id", "2"},           {"eos_token_id", json::array()},
      {"bos_token_id", 1.5},           {"rope_scaling", "llama3"},
      {"model_type", 7},               {"head_dim", -1.0},
      {"hidden_size", 1e12},           {"vocab_size", 99999999999},
      {"sliding_window", "4096"},      {"max_position_embeddings", json::object()},
  };
  for (const auto& [k, v] : bad) {
    auto j = base_json();
    j[k] = v;
    SCOPED_TRACE(fmt::format("{} = {}", k, v.dump()));
    expect_error([&] { parse_hf_config(j.dump(), "cfg.json"); }, {k, "cfg.json"});
  }
}

TEST(HfConfig, UnsupportedArchitecturesAndShapes) {
  auto j = base_json();
  j["model_type"] = "gpt2";
  expect_error([&] { parse_hf_config(j.dump(), "c.json"); }, {"gpt2", "c.json"});
  j.erase("model_type");
  j["architectures"] = {"Qwen2ForCausalLM"};
  expect_error([&] { parse_hf_config(j.dump(), "c.json"); }, {"Qwen2ForCausalLM", "c.json"});
  j["architectures"] = json::array();
  expect_error([&] { parse_hf_config(j.dump(), "c.json"); }, {"architectures"});

  j = base_json();
  j["num_key_value_heads"] = 4;  // 9 heads are not a multiple of 4 KV heads
  expect_error([&] { parse_hf_config(j.dump(), "c.json"); }, {"num_key_value_heads", "c.json"});
  j = base_json();
  j["num_attention_heads"] = 7;  // 576 / 7 is not an integer (and no head_dim)
  j["num_key_value_heads"] = 7;
  expect_error([&] { parse_hf_config(j.dump(), "c.json"); }, {"hidden_size", "num_attention_heads"});
  j = base_json();
  j["num_attention_heads"] = 0;
  expect_error([&] { parse_hf_config(j.dump()); }, {"num_attention_heads"});
  j = base_json();
  j["hidden_size"] = -576;
  expect_error([&] { parse_hf_config(j.dump()); }, {"hidden_size"});
  j = base_json();
  j["hidden_act"] = "gelu";
  expect_error([&] { parse_hf_config(j.dump()); }, {"gelu"});
  j = base_json();
  j["attention_bias"] = true;
  expect_error([&] { parse_hf_config(j.dump()); }, {"attention_bias"});
  j = base_json();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error([&] { parse_hf_config(j.dump()); }, {"yarn"});
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 0.5}};
  expect_error([&] { parse_hf_config(j.dump()); }, {"factor"});
  expect_error([&] { parse_hf_config("{\"model_type\": ", "broken.json"); }, {"broken.json", "JSON"});
  expect_error([&] { parse_hf_config("[]", "arr.json"); }, {"arr.json", "object"});
}

TEST(HfConfig, LoadFromFile) {
  const auto dir = std::filesystem::temp_directory_path() /
                   fmt::format("atom_cfg_{}_{}", ::getpid(), std::random_device{}());
  std::filesystem::create_directories(dir);
  const std::string p = (dir / "config.json").string();
  std::ofstream(p) << kTinyLlama;
  EXPECT_EQ(atom::io::load_hf_config(p).num_layers, 22);
  std::ofstream(p) << "{\"model_type\": \"llama\"}";
  expect_error([&] { atom::io::load_hf_config(p); }, {p, "vocab_size"});
  std::filesystem::remove_all(dir);
  expect_error([&] { atom::io::load_hf_config(p); }, {p});
}

// transformers >= 5 writes the RoPE base and scaling into "rope_parameters" (no top-level
// rope_theta). Found by tools/reference/ref_logits.py: ignoring it ran RoPE with base 10000.
TEST(HfConfig, TransformersV5RopeParameters) {
  json j = json::parse(kSmolLM2);
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 100000.0}, {"rope_type", "default"}};
  auto c = parse_hf_config(j.dump());
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);

  json l = json::parse(kLlama31);
  l.erase("rope_theta");
  l["rope_parameters"] = l["rope_scaling"];
  l.erase("rope_scaling");
  l["rope_parameters"]["rope_theta"] = 500000.0;
  c = parse_hf_config(l.dump());
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 8.0f);

  j["rope_parameters"] = "bad";
  expect_error([&] { parse_hf_config(j.dump()); }, {"rope_parameters"});
}
