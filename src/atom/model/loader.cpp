#include "atom/model/loader.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <map>
#include <random>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/io/hf_config.h"
#include "atom/io/safetensors.h"
#include "atom/model/rope.h"

namespace fs = std::filesystem;

namespace atom {

ModelFormat detect_model_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "atom_config.json")) return ModelFormat::AtomCheckpoint;
    if (fs::exists(fs::path(path) / "config.json")) return ModelFormat::HfDirectory;
    fail("'{}' is a directory without config.json (expected an HF model directory or an Atom checkpoint)", path);
  }
  ATOM_CHECK(fs::exists(path, ec), "model path '{}' does not exist", path);
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  f.read(magic, 4);
  if (f.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return ModelFormat::Gguf;
  fail("'{}' is neither a GGUF file nor a model directory", path);
}

namespace {

// Checks a tensor's shape and converts it to fp32.
std::vector<float> take(const Tensor& t, const std::string& name, std::vector<int64_t> want,
                        const std::string& src) {
  ATOM_CHECK(t.shape == want, "{}: tensor '{}' has shape {}, expected [{}]", src, name, t.shape_str(),
             fmt::join(want, ", "));
  return to_f32(t, name);
}

template <typename GetFn>
void fill_layers(LlamaModel& m, GetFn&& get) {
  const ModelConfig& c = m.cfg;
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  const int64_t q_dim = int64_t(c.num_heads) * c.head_dim, kv_dim = int64_t(c.num_kv_heads) * c.head_dim;
  const int64_t out_dims[kNumLinearSlots] = {q_dim, kv_dim, kv_dim, H, F, F, H};
  const int64_t in_dims[kNumLinearSlots] = {H, H, H, q_dim, H, H, F};
  m.layers.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayer& L = m.layers[size_t(l)];
    L.attn_norm = get(l, "attn_norm", std::vector<int64_t>{H});
    L.ffn_norm = get(l, "ffn_norm", std::vector<int64_t>{H});
    for (int s = 0; s < kNumLinearSlots; ++s) {
      auto w = get(l, linear_slot_name(LinearSlot(s)), std::vector<int64_t>{out_dims[s], in_dims[s]});
      L.linear[s] = std::make_unique<DenseLinear>(in_dims[s], out_dims[s], std::move(w));
    }
  }
  m.rope_inv_freq = rope_inv_freq(c);
}

// "Q4_1" etc.: the type most of the file's 2-D tensors have (for the weights note).
std::string dominant_ggml_type(const io::GgufFile& g) {
  std::map<std::string, int> count;
  for (const auto& t : g.tensors())
    if (t.dims.size() == 2) ++count[io::ggml_type_name(t.type)];
  std::string best = "?";
  int n = 0;
  for (const auto& [name, c] : count)
    if (c > n) best = name, n = c;
  return best;
}

}  // namespace

std::unique_ptr<LlamaModel> load_llama_hf(const std::string& dir) {
  auto m = std::make_unique<LlamaModel>();
  m->cfg = io::load_hf_config((fs::path(dir) / "config.json").string());
  io::SafetensorsCheckpoint ck(dir);
  const ModelConfig& c = m->cfg;
  const int64_t H = c.hidden_size;
  m->embed = take(ck.get("model.embed_tokens.weight"), "model.embed_tokens.weight", {c.vocab_size, H}, dir);
  m->final_norm = take(ck.get("model.norm.weight"), "model.norm.weight", {H}, dir);
  if (!c.tie_word_embeddings && ck.has("lm_head.weight")) {
    m->lm_head = std::make_unique<DenseLinear>(
        H, c.vocab_size, take(ck.get("lm_head.weight"), "lm_head.weight", {c.vocab_size, H}, dir));
  } else {
    ATOM_CHECK(c.tie_word_embeddings, "{}: config says tie_word_embeddings=false but there is no lm_head.weight",
               dir);
  }
  fill_layers(*m, [&](int l, const std::string& what, std::vector<int64_t> shape) {
    std::string name;
    if (what == "attn_norm") name = fmt::format("model.layers.{}.input_layernorm.weight", l);
    else if (what == "ffn_norm") name = fmt::format("model.layers.{}.post_attention_layernorm.weight", l);
    else {
      const bool mlp = what == "gate_proj" || what == "up_proj" || what == "down_proj";
      name = fmt::format("model.layers.{}.{}.{}.weight", l, mlp ? "mlp" : "self_attn", what);
    }
    return take(ck.get(name), name, std::move(shape), dir);
  });
  m->source = dir;
  std::string dt = std::string(dtype_name(ck.get("model.embed_tokens.weight").dtype));
  m->weights_note = "HF safetensors (" + dt + ")";
  return m;
}

void unpermute_qk_rows(std::vector<float>& w, int n_head, int64_t in) {
  // llama.cpp: reshape(n_head, 2, hd/2, in).swapaxes(1, 2) — row (h, i, j) came from (h, j, i).
  const int64_t rows = int64_t(w.size()) / in;
  const int64_t hd = rows / n_head, half = hd / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t gguf_row = h * hd + i * 2 + j, hf_row = h * hd + j * half + i;
        std::memcpy(&out[size_t(hf_row * in)], &w[size_t(gguf_row * in)], size_t(in) * sizeof(float));
      }
  w.swap(out);
}

std::unique_ptr<LlamaModel> load_llama_gguf(const std::string& path) {
  io::GgufFile g(path);
  auto m = std::make_unique<LlamaModel>();
  m->cfg = io::config_from_gguf(g);
  const ModelConfig& c = m->cfg;
  const int64_t H = c.hidden_size;
  auto get = [&](const std::string& name, std::vector<int64_t> shape) {
    ATOM_CHECK(g.has_tensor(name), "{}: tensor '{}' is missing", path, name);
    return take(g.get_f32(name), name, std::move(shape), path);
  };
  m->embed = get("token_embd.weight", {c.vocab_size, H});
  m->final_norm = get("output_norm.weight", {H});
  if (g.has_tensor("output.weight"))
    m->lm_head = std::make_unique<DenseLinear>(H, c.vocab_size, get("output.weight", {c.vocab_size, H}));
  static const std::map<std::string, std::string> gguf_names = {
      {"attn_norm", "attn_norm"}, {"ffn_norm", "ffn_norm"},  {"q_proj", "attn_q"},     {"k_proj", "attn_k"},
      {"v_proj", "attn_v"},       {"o_proj", "attn_output"}, {"gate_proj", "ffn_gate"}, {"up_proj", "ffn_up"},
      {"down_proj", "ffn_down"}};
  fill_layers(*m, [&](int l, const std::string& what, std::vector<int64_t> shape) {
    auto w = get(fmt::format("blk.{}.{}.weight", l, gguf_names.at(what)), shape);
    if (what == "q_proj") unpermute_qk_rows(w, c.num_heads, H);
    if (what == "k_proj") unpermute_qk_rows(w, c.num_kv_heads, H);
    return w;
  });
  m->source = path;
  m->weights_note = fmt::format("dequantized from GGUF ({})", dominant_ggml_type(g));
  return m;
}

std::unique_ptr<LlamaModel> load_llama(const std::string& path) {
  switch (detect_model_format(path)) {
    case ModelFormat::HfDirectory: return load_llama_hf(path);
    case ModelFormat::Gguf: return load_llama_gguf(path);
    case ModelFormat::AtomCheckpoint:
      fail("'{}' is a quantized Atom checkpoint; load it with atom::load_any_model", path);
  }
  fail("unreachable");
}

std::unique_ptr<LlamaModel> make_random_llama(const ModelConfig& cfg, uint64_t seed) {
  cfg.validate();
  auto m = std::make_unique<LlamaModel>();
  m->cfg = cfg;
  std::mt19937_64 rng(seed);
  auto randn = [&](int64_t n, float stddev, float mean = 0.0f) {
    std::normal_distribution<float> d(mean, stddev);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
  };
  const int64_t H = cfg.hidden_size;
  m->embed = randn(int64_t(cfg.vocab_size) * H, 1.0f);
  m->final_norm = randn(H, 0.1f, 1.0f);
  if (!cfg.tie_word_embeddings)
    m->lm_head = std::make_unique<DenseLinear>(H, cfg.vocab_size, randn(int64_t(cfg.vocab_size) * H, 0.05f));
  fill_layers(*m, [&](int, const std::string& what, std::vector<int64_t> shape) {
    if (shape.size() == 1) return randn(shape[0], 0.1f, 1.0f);
    return randn(shape[0] * shape[1], 1.0f / std::sqrt(float(shape[1])));
  });
  m->source = fmt::format("random(seed={})", seed);
  m->weights_note = "synthetic";
  return m;
}

}  // namespace atom
