// HF config.json and GGUF llama metadata -> ModelConfig. Both parsers check types and ranges
// field by field (errors name the field and the source) and end with ModelConfig::validate().
#include "atom/io/hf_config.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "atom/core/error.h"
#include "atom/io/gguf.h"

namespace atom::io {
namespace {

using json = nlohmann::json;

// Runs cfg.validate(), prefixing its message with where the numbers came from.
void validate_from(const ModelConfig& cfg, const std::string& source) {
  try {
    cfg.validate();
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
}

// Field access for one JSON object with errors that name the field and the source.
class Fields {
 public:
  Fields(const json& j, std::string source, std::string prefix = "")
      : j_(j), src_(std::move(source)), prefix_(std::move(prefix)) {}

  // Present and not null.
  bool has(const char* k) const {
    auto it = j_.find(k);
    return it != j_.end() && !it->is_null();
  }
  const json& at(const char* k) const {
    auto it = j_.find(k);
    if (it == j_.end() || it->is_null()) fail("{}: missing required field '{}{}'", src_, prefix_, k);
    return *it;
  }
  int to_int(const json& v, const char* k) const {
    if (!v.is_number_integer())  // also true for unsigned
      fail("{}: field '{}{}' must be an integer, got {}", src_, prefix_, k, v.dump());
    if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(std::numeric_limits<int>::max())
                               : (v.get<int64_t>() > std::numeric_limits<int>::max() ||
                                  v.get<int64_t>() < std::numeric_limits<int>::min()))
      fail("{}: field '{}{}' = {} is out of range", src_, prefix_, k, v.dump());
    return int(v.get<int64_t>());
  }
  int get_int(const char* k) const { return to_int(at(k), k); }
  int get_int_or(const char* k, int def) const { return has(k) ? get_int(k) : def; }
  float get_float(const char* k) const {
    const json& v = at(k);
    if (!v.is_number()) fail("{}: field '{}{}' must be a number, got {}", src_, prefix_, k, v.dump());
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > 3.0e38)
      fail("{}: field '{}{}' = {} is out of range", src_, prefix_, k, v.dump());
    return float(d);
  }
  float get_float_or(const char* k, float def) const { return has(k) ? get_float(k) : def; }
  bool get_bool_or(const char* k, bool def) const {
    if (!has(k)) return def;
    const json& v = at(k);
    if (!v.is_boolean()) fail("{}: field '{}{}' must be true or false, got {}", src_, prefix_, k, v.dump());
    return v.get<bool>();
  }
  std::string get_string(const char* k) const {
    const json& v = at(k);
    if (!v.is_string()) fail("{}: field '{}{}' must be a string, got {}", src_, prefix_, k, v.dump());
    return v.get<std::string>();
  }
  // A token id that may be an int or a list of ints (Llama-3 eos): the first is taken.
  int get_token_id_or(const char* k, int def) const {
    if (!has(k)) return def;
    const json& v = at(k);
    if (v.is_array()) {
      if (v.empty()) fail("{}: field '{}{}' is an empty list", src_, prefix_, k);
      return to_int(v[0], k);
    }
    return to_int(v, k);
  }
  const std::string& source() const { return src_; }

 private:
  const json& j_;
  std::string src_;
  std::string prefix_;
};

void parse_rope_scaling(const json& rs, const std::string& src, ModelConfig& cfg) {
  if (rs.is_null()) return;
  if (!rs.is_object()) fail("{}: field 'rope_scaling' must be an object or null, got {}", src, rs.dump());
  Fields f(rs, src, "rope_scaling.");
  // transformers >= 4.43 writes "rope_type"; older configs write "type".
  const std::string type = f.has("rope_type") ? f.get_string("rope_type") : f.get_string("type");
  if (type == "default") return;
  if (type == "linear") {
    cfg.rope_scaling.type = RopeScaling::Type::Linear;
    cfg.rope_scaling.factor = f.get_float("factor");
  } else if (type == "llama3") {
    cfg.rope_scaling.type = RopeScaling::Type::Llama3;
    cfg.rope_scaling.factor = f.get_float("factor");
    cfg.rope_scaling.low_freq_factor = f.get_float("low_freq_factor");
    cfg.rope_scaling.high_freq_factor = f.get_float("high_freq_factor");
    cfg.rope_scaling.original_max_position_embeddings = f.get_int("original_max_position_embeddings");
    const auto& r = cfg.rope_scaling;
    ATOM_CHECK(r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor,
               "{}: rope_scaling needs 0 < low_freq_factor < high_freq_factor (got {} and {})", src,
               r.low_freq_factor, r.high_freq_factor);
    ATOM_CHECK(r.original_max_position_embeddings > 0,
               "{}: rope_scaling.original_max_position_embeddings must be positive", src);
  } else {
    fail("{}: rope_scaling type '{}' is not supported (supported: linear, llama3)", src, type);
  }
}

}  // namespace

ModelConfig parse_hf_config(const std::string& json_text, const std::string& source) {
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", source, e.what());
  }
  ATOM_CHECK(j.is_object(), "{}: config must be a JSON object", source);
  Fields f(j, source);
  ModelConfig cfg;

  // Architecture: model_type when present, else the architectures list.
  if (f.has("model_type")) {
    const std::string mt = f.get_string("model_type");
    ATOM_CHECK(mt == "llama" || mt == "mistral",
               "{}: model_type '{}' is not supported (supported: llama, mistral)", source, mt);
    cfg.architecture = mt;
  } else if (f.has("architectures")) {
    const json& a = f.at("architectures");
    ATOM_CHECK(a.is_array() && !a.empty() && a[0].is_string(),
               "{}: field 'architectures' must be a non-empty list of strings", source);
    const std::string arch = a[0].get<std::string>();
    if (arch == "LlamaForCausalLM") cfg.architecture = "llama";
    else if (arch == "MistralForCausalLM") cfg.architecture = "mistral";
    else fail("{}: architecture '{}' is not supported (supported: LlamaForCausalLM, MistralForCausalLM)",
              source, arch);
  } else {
    fail("{}: missing required field 'model_type' (or 'architectures')", source);
  }

  cfg.vocab_size = f.get_int("vocab_size");
  cfg.hidden_size = f.get_int("hidden_size");
  cfg.intermediate_size = f.get_int("intermediate_size");
  cfg.num_layers = f.get_int("num_hidden_layers");
  cfg.num_heads = f.get_int("num_attention_heads");
  ATOM_CHECK(cfg.num_heads > 0, "{}: num_attention_heads must be positive (got {})", source,
             cfg.num_heads);
  cfg.num_kv_heads = f.get_int_or("num_key_value_heads", cfg.num_heads);
  if (f.has("head_dim")) {
    cfg.head_dim = f.get_int("head_dim");
  } else {
    ATOM_CHECK(cfg.hidden_size % cfg.num_heads == 0,
               "{}: hidden_size ({}) is not divisible by num_attention_heads ({}) and no head_dim "
               "is given",
               source, cfg.hidden_size, cfg.num_heads);
    cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  }
  // Defaults are transformers' LlamaConfig / MistralConfig defaults.
  cfg.max_position_embeddings =
      f.get_int_or("max_position_embeddings", cfg.architecture == "mistral" ? 4096 * 32 : 2048);
  cfg.rms_norm_eps = f.get_float_or("rms_norm_eps", 1e-6f);
  cfg.rope_theta = f.get_float_or("rope_theta", 10000.0f);
  cfg.tie_word_embeddings = f.get_bool_or("tie_word_embeddings", false);
  cfg.sliding_window = f.get_int_or("sliding_window", 0);  // null (Mistral v0.2+) = none
  ATOM_CHECK(cfg.sliding_window >= 0, "{}: sliding_window must be >= 0 or null", source);
  cfg.bos_token_id = f.get_token_id_or("bos_token_id", -1);
  cfg.eos_token_id = f.get_token_id_or("eos_token_id", -1);
  if (f.has("rope_scaling")) parse_rope_scaling(f.at("rope_scaling"), source, cfg);
  // transformers >= 5 writes {"rope_parameters": {"rope_theta": ..., "rope_type": ..., scaling keys}}
  // and no top-level rope_theta; missing it would silently run RoPE with base 10000.
  if (f.has("rope_parameters") && !f.at("rope_parameters").is_null()) {
    const json& rp = f.at("rope_parameters");
    ATOM_CHECK(rp.is_object(), "{}: field 'rope_parameters' must be an object", source);
    Fields p(rp, source, "rope_parameters.");
    if (p.has("rope_theta")) cfg.rope_theta = p.get_float("rope_theta");
    if (p.has("rope_type") || p.has("type")) parse_rope_scaling(rp, source, cfg);
  }

  // Features of other Llama variants that this engine does not implement.
  if (f.has("hidden_act")) {
    const std::string act = f.get_string("hidden_act");
    ATOM_CHECK(act == "silu", "{}: hidden_act '{}' is not supported (only silu)", source, act);
  }
  ATOM_CHECK(!f.get_bool_or("attention_bias", false),
             "{}: attention_bias = true is not supported", source);
  ATOM_CHECK(!f.get_bool_or("mlp_bias", false), "{}: mlp_bias = true is not supported", source);

  validate_from(cfg, source);
  return cfg;
}

ModelConfig load_hf_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ATOM_CHECK(in.good(), "cannot open '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_hf_config(ss.str(), path);
}

ModelConfig config_from_gguf(const GgufFile& g) {
  const std::string& src = g.path();
  const std::string arch = g.get_string("general.architecture");
  ATOM_CHECK(arch == "llama" || arch == "mistral",
             "unsupported architecture '{}' in {} (supported: llama)", arch, src);
  const std::string k = arch + ".";
  // Integer keys are u32 in practice; anything that does not fit an int is corrupt.
  auto as_int = [&](const std::string& key, int64_t v) {
    ATOM_CHECK(v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(),
               "{}: metadata key '{}' = {} is out of range", src, key, v);
    return int(v);
  };
  auto req = [&](const std::string& key) { return as_int(key, g.get_int(key)); };
  auto opt = [&](const std::string& key, int def) { return as_int(key, g.get_int_or(key, def)); };

  ModelConfig cfg;
  cfg.architecture = arch;
  cfg.num_layers = req(k + "block_count");
  cfg.hidden_size = req(k + "embedding_length");
  cfg.intermediate_size = req(k + "feed_forward_length");
  cfg.num_heads = req(k + "attention.head_count");
  ATOM_CHECK(cfg.num_heads > 0, "{}: {}attention.head_count must be positive", src, k);
  cfg.num_kv_heads = opt(k + "attention.head_count_kv", cfg.num_heads);
  if (g.has(k + "attention.key_length")) {
    cfg.head_dim = req(k + "attention.key_length");
  } else {
    ATOM_CHECK(cfg.hidden_size % cfg.num_heads == 0,
               "{}: embedding_length {} is not divisible by head_count {}", src, cfg.hidden_size,
               cfg.num_heads);
    cfg.head_dim = cfg.hidden_size / cfg.num_heads;
  }
  if (g.has(k + "attention.value_length"))
    ATOM_CHECK(req(k + "attention.value_length") == cfg.head_dim,
               "{}: {}attention.value_length differs from key_length; not supported", src, k);
  // Llama rotates the whole head; a smaller rope.dimension_count means partial rotary.
  if (g.has(k + "rope.dimension_count"))
    ATOM_CHECK(req(k + "rope.dimension_count") == cfg.head_dim,
               "{}: {}rope.dimension_count {} differs from head_dim {}; partial RoPE is not supported",
               src, k, req(k + "rope.dimension_count"), cfg.head_dim);
  cfg.max_position_embeddings = req(k + "context_length");
  cfg.rms_norm_eps = float(g.get_float(k + "attention.layer_norm_rms_epsilon"));
  cfg.rope_theta = float(g.get_float_or(k + "rope.freq_base", 10000.0));
  if (g.has(k + "vocab_size")) {
    cfg.vocab_size = req(k + "vocab_size");
  } else if (g.has("tokenizer.ggml.tokens")) {
    cfg.vocab_size = as_int("tokenizer.ggml.tokens", int64_t(g.get_string_array("tokenizer.ggml.tokens").size()));
  } else {
    fail("{}: no {}vocab_size and no tokenizer.ggml.tokens to infer the vocabulary size", src, k);
  }
  if (g.has(k + "attention.sliding_window")) cfg.sliding_window = req(k + "attention.sliding_window");

  // RoPE scaling: "{arch}.rope.scaling.type" (none/linear/yarn) + factor; older files store only
  // "{arch}.rope.scale_linear".
  const std::string stype = g.get_string_or(k + "rope.scaling.type", "none");
  if (stype == "linear") {
    cfg.rope_scaling.type = RopeScaling::Type::Linear;
    cfg.rope_scaling.factor = float(g.get_float(k + "rope.scaling.factor"));
  } else if (stype != "none") {
    fail("{}: rope scaling type '{}' is not supported (supported: none, linear)", src, stype);
  } else if (g.has(k + "rope.scale_linear") && g.get_float(k + "rope.scale_linear") != 1.0) {
    cfg.rope_scaling.type = RopeScaling::Type::Linear;
    cfg.rope_scaling.factor = float(g.get_float(k + "rope.scale_linear"));
  }
  // Llama-3.1-style files bake the llama3 frequency scaling into a "rope_freqs.weight" tensor of
  // per-frequency factors; its parameters are not in the metadata, so it is not applied here.
  if (g.has_tensor("rope_freqs.weight"))
    spdlog::warn("{}: has rope_freqs.weight (llama3 RoPE frequency factors); Atom ignores it and "
                 "runs unscaled RoPE, so outputs will differ slightly from llama.cpp",
                 src);

  cfg.bos_token_id = opt("tokenizer.ggml.bos_token_id", -1);
  cfg.eos_token_id = opt("tokenizer.ggml.eos_token_id", -1);
  cfg.tie_word_embeddings = !g.has_tensor("output.weight");

  validate_from(cfg, src);
  return cfg;
}

}  // namespace atom::io
