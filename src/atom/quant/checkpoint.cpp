#include "atom/quant/checkpoint.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/io/gguf.h"
#include "atom/io/gguf_writer.h"
#include "atom/io/safetensors.h"
#include "atom/model/loader.h"
#include "atom/model/rope.h"
#include "atom/model/segmented_linear.h"
#include "atom/quant/int4.h"
#include "atom/quant/quantize.h"
#include "atom/quant/w8a8_linear.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace atom::quant {

json model_config_to_json(const ModelConfig& c) {
  const char* rope_type = c.rope_scaling.type == RopeScaling::Type::Llama3   ? "llama3"
                          : c.rope_scaling.type == RopeScaling::Type::Linear ? "linear"
                                                                              : "none";
  return {{"architecture", c.architecture},
          {"vocab_size", c.vocab_size},
          {"hidden_size", c.hidden_size},
          {"intermediate_size", c.intermediate_size},
          {"num_hidden_layers", c.num_layers},
          {"num_attention_heads", c.num_heads},
          {"num_key_value_heads", c.num_kv_heads},
          {"head_dim", c.head_dim},
          {"max_position_embeddings", c.max_position_embeddings},
          {"rms_norm_eps", c.rms_norm_eps},
          {"rope_theta", c.rope_theta},
          {"rope_scaling",
           {{"type", rope_type},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}}},
          {"tie_word_embeddings", c.tie_word_embeddings},
          {"sliding_window", c.sliding_window},
          {"bos_token_id", c.bos_token_id},
          {"eos_token_id", c.eos_token_id}};
}

ModelConfig model_config_from_json(const json& j) {
  ModelConfig c;
  try {
    c.architecture = j.at("architecture").get<std::string>();
    c.vocab_size = j.at("vocab_size").get<int>();
    c.hidden_size = j.at("hidden_size").get<int>();
    c.intermediate_size = j.at("intermediate_size").get<int>();
    c.num_layers = j.at("num_hidden_layers").get<int>();
    c.num_heads = j.at("num_attention_heads").get<int>();
    c.num_kv_heads = j.at("num_key_value_heads").get<int>();
    c.head_dim = j.at("head_dim").get<int>();
    c.max_position_embeddings = j.at("max_position_embeddings").get<int>();
    c.rms_norm_eps = j.at("rms_norm_eps").get<float>();
    c.rope_theta = j.at("rope_theta").get<float>();
    const json& rs = j.at("rope_scaling");
    const std::string t = rs.at("type").get<std::string>();
    c.rope_scaling.type = t == "llama3" ? RopeScaling::Type::Llama3
                          : t == "linear" ? RopeScaling::Type::Linear
                                          : RopeScaling::Type::None;
    c.rope_scaling.factor = rs.at("factor").get<float>();
    c.rope_scaling.low_freq_factor = rs.at("low_freq_factor").get<float>();
    c.rope_scaling.high_freq_factor = rs.at("high_freq_factor").get<float>();
    c.rope_scaling.original_max_position_embeddings = rs.at("original_max_position_embeddings").get<int>();
    c.tie_word_embeddings = j.at("tie_word_embeddings").get<bool>();
    c.sliding_window = j.value("sliding_window", 0);
    c.bos_token_id = j.value("bos_token_id", -1);
    c.eos_token_id = j.value("eos_token_id", -1);
  } catch (const json::exception& e) {
    fail("checkpoint model config: {}", e.what());
  }
  c.validate();
  return c;
}

namespace {

using TensorList = std::vector<std::pair<std::string, Tensor>>;

template <typename T>
Tensor raw_tensor(DType dt, std::vector<int64_t> shape, const T* data, size_t n) {
  std::vector<uint8_t> bytes(n * sizeof(T));
  if (n) std::memcpy(bytes.data(), data, bytes.size());
  return Tensor::from_bytes(dt, std::move(shape), std::move(bytes));
}

Tensor f16_tensor(std::vector<int64_t> shape, const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = float_to_fp16(v[i]);
  return raw_tensor(DType::F16, std::move(shape), h.data(), h.size());
}

Tensor f32_tensor(std::vector<int64_t> shape, const std::vector<float>& v) {
  return raw_tensor(DType::F32, std::move(shape), v.data(), v.size());
}

// A tensor from the checkpoint with its dtype and shape checked.
Tensor expect(const io::SafetensorsCheckpoint& ck, const std::string& name, DType dt, std::vector<int64_t> shape) {
  ATOM_CHECK(ck.has(name), "checkpoint: tensor '{}' is missing", name);
  Tensor t = ck.get(name);
  ATOM_CHECK(t.dtype == dt && t.shape == shape, "checkpoint: tensor '{}' is {} {}, expected {} [{}]", name,
             dtype_name(t.dtype), t.shape_str(), dtype_name(dt), fmt::join(shape, ", "));
  return t;
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  std::vector<T> v(size_t(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(T));
  return v;
}

void add_linear(TensorList& out, const std::string& p, const Linear& lin) {
  const int64_t N = lin.out_features(), K = lin.in_features();
  if (auto* sl = dynamic_cast<const SegmentedLinear*>(&lin)) {  // row-parallel, tp_segments > 1
    for (int j = 0; j < sl->num_segments(); ++j) add_linear(out, fmt::format("{}.seg{}", p, j), sl->segment(j));
  } else if (auto* a = dynamic_cast<const AtomLinear*>(&lin)) {
    const AtomWeights& w = a->weights();
    const AtomLayout lay = w.layout();
    out.emplace_back(p + ".perm", raw_tensor(DType::I32, {K}, w.perm.data(), w.perm.size()));
    out.emplace_back(p + ".qweight", raw_tensor(DType::U8, {N, int64_t(w.w_int4.size()) / N}, w.w_int4.data(),
                                                w.w_int4.size()));
    out.emplace_back(p + ".scales", f16_tensor({N, lay.n_groups}, w.w_scale));
    if (lay.n_outlier > 0 && w.config.outlier_bits == 8) {
      out.emplace_back(p + ".qweight_outlier",
                       raw_tensor(DType::I8, {N, lay.n_outlier}, w.w_outlier.data(), w.w_outlier.size()));
      out.emplace_back(p + ".scales_outlier", f16_tensor({N}, w.w_outlier_scale));
    } else if (lay.n_outlier > 0) {
      out.emplace_back(p + ".weight_outlier", f16_tensor({N, lay.n_outlier}, w.w_outlier_fp16));
    }
  } else if (auto* q = dynamic_cast<const W8A8Linear*>(&lin)) {
    const W8A8Weights& w = q->weights();
    out.emplace_back(p + ".qweight", raw_tensor(DType::I8, {N, K}, w.w_int8.data(), w.w_int8.size()));
    out.emplace_back(p + ".scales", f16_tensor({N}, w.w_scale));
    if (!w.smooth.empty()) out.emplace_back(p + ".smooth", f32_tensor({K}, w.smooth));
  } else if (auto* d = dynamic_cast<const DenseLinear*>(&lin)) {
    out.emplace_back(p + ".weight", f16_tensor({N, K}, d->weight()));
  } else {
    fail("checkpoint: cannot save a linear of kind '{}'", lin.kind());
  }
}

std::unique_ptr<Linear> read_linear(const io::SafetensorsCheckpoint& ck, const std::string& p, int64_t N, int64_t K,
                                    const QuantConfig& cfg, int segments = 1) {
  if (segments > 1 && cfg.method != "fp16") {  // K-segments of a row-parallel linear, each with its share of the outliers
    ATOM_CHECK(K % segments == 0 && cfg.atom.n_outlier % segments == 0,
               "checkpoint: '{}' cannot split into {} segments", p, segments);
    QuantConfig seg_cfg = cfg;
    seg_cfg.atom.n_outlier /= segments;
    std::vector<std::unique_ptr<Linear>> segs;
    for (int j = 0; j < segments; ++j)
      segs.push_back(read_linear(ck, fmt::format("{}.seg{}", p, j), N, K / segments, seg_cfg));
    return std::make_unique<SegmentedLinear>(std::move(segs));
  }
  if (cfg.method == "fp16")
    return std::make_unique<DenseLinear>(K, N, to_f32(expect(ck, p + ".weight", DType::F16, {N, K}), p));
  if (cfg.method == "w8a8") {
    W8A8Weights w;
    w.out_features = N;
    w.in_features = K;
    w.w_int8 = values<int8_t>(expect(ck, p + ".qweight", DType::I8, {N, K}));
    w.w_scale = to_f32(expect(ck, p + ".scales", DType::F16, {N}), p);
    if (ck.has(p + ".smooth")) w.smooth = values<float>(expect(ck, p + ".smooth", DType::F32, {K}));
    return std::make_unique<W8A8Linear>(std::move(w));
  }
  AtomWeights w;
  w.out_features = N;
  w.in_features = K;
  w.config = cfg.atom;
  const AtomLayout lay(K, cfg.atom);
  w.perm = values<int32_t>(expect(ck, p + ".perm", DType::I32, {K}));
  w.w_int4 = values<uint8_t>(expect(ck, p + ".qweight", DType::U8, {N, int4_bytes(lay.k_normal)}));
  w.w_scale = to_f32(expect(ck, p + ".scales", DType::F16, {N, lay.n_groups}), p);
  if (lay.n_outlier > 0 && cfg.atom.outlier_bits == 8) {
    w.w_outlier = values<int8_t>(expect(ck, p + ".qweight_outlier", DType::I8, {N, lay.n_outlier}));
    w.w_outlier_scale = to_f32(expect(ck, p + ".scales_outlier", DType::F16, {N}), p);
  } else if (lay.n_outlier > 0) {
    w.w_outlier_fp16 = to_f32(expect(ck, p + ".weight_outlier", DType::F16, {N, lay.n_outlier}), p);
  }
  return std::make_unique<AtomLinear>(std::move(w));  // validates perm, sizes and values
}

void copy_tokenizer(const std::string& source, const std::string& dir) {
  if (fs::is_directory(source)) {
    // tokenizer.gguf: the source is itself an Atom checkpoint made from a GGUF model.
    bool any = false;
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "tokenizer.model", "tokenizer.gguf"}) {
      const fs::path from = fs::path(source) / f, to = fs::path(dir) / f;
      if (!fs::exists(from)) continue;
      any = true;
      std::error_code ec;
      if (fs::exists(to) && fs::equivalent(from, to, ec)) continue;  // saving over the source itself
      fs::copy_file(from, to, fs::copy_options::overwrite_existing);
    }
    ATOM_CHECK(any, "checkpoint: source '{}' has no tokenizer file to copy (tokenizer.json, tokenizer.model or "
               "tokenizer.gguf)", source);
    return;
  }
  ATOM_CHECK(fs::is_regular_file(source), "checkpoint: source model '{}' (where the tokenizer is copied from) is "
             "neither a directory nor a GGUF file", source);
  io::GgufFile g(source);
  std::map<std::string, io::GgufValue> kv;
  for (const auto& [key, value] : g.metadata())
    if (key.rfind("tokenizer.", 0) == 0 || key == "general.architecture") kv[key] = value;
  io::write_gguf_metadata((fs::path(dir) / "tokenizer.gguf").string(), kv);
}

}  // namespace

void save_checkpoint(const std::string& dir, const LlamaModel& model, const QuantConfig& cfg,
                     const QuantizeReport& report, const std::string& source_model) {
  try {
    fs::create_directories(dir);
    // The tokenizer first: a source without one fails before anything that looks like a
    // checkpoint is written. atom_config.json (what format detection reads) comes last.
    copy_tokenizer(source_model, dir);
  } catch (const fs::filesystem_error& e) {
    fail("checkpoint '{}': {}", dir, e.what());
  }
  const ModelConfig& c = model.cfg;
  TensorList t;
  t.emplace_back("model.embed_tokens", f16_tensor({c.vocab_size, c.hidden_size}, model.embed));
  t.emplace_back("model.norm", f32_tensor({c.hidden_size}, model.final_norm));
  if (model.lm_head) {
    auto* d = dynamic_cast<const DenseLinear*>(model.lm_head.get());
    ATOM_CHECK(d, "checkpoint: lm_head must stay dense (16-bit)");
    t.emplace_back("lm_head", f16_tensor({c.vocab_size, c.hidden_size}, d->weight()));
  }
  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayer& L = model.layers[size_t(l)];
    const std::string p = fmt::format("layers.{}.", l);
    t.emplace_back(p + "attn_norm", f32_tensor({c.hidden_size}, L.attn_norm));
    t.emplace_back(p + "ffn_norm", f32_tensor({c.hidden_size}, L.ffn_norm));
    for (int s = 0; s < kNumLinearSlots; ++s) add_linear(t, p + linear_slot_name(LinearSlot(s)), *L.linear[s]);
  }
  const json meta = {{"model", model_config_to_json(c)},
                     {"quant", cfg.to_json()},
                     {"report", report.to_json()},
                     {"source", source_model}};
  io::write_safetensors((fs::path(dir) / "model.safetensors").string(), t,
                        {{"format", "atom"}, {"format_version", "1"}, {"atom_config", meta.dump()}});
  const std::string cfg_path = (fs::path(dir) / "atom_config.json").string();
  std::ofstream f(cfg_path, std::ios::binary | std::ios::trunc);
  f << meta.dump(2) << "\n";
  f.close();
  ATOM_CHECK(f.good(), "checkpoint: cannot write '{}'", cfg_path);
}

LoadedCheckpoint load_checkpoint(const std::string& dir) {
  const std::string file = (fs::path(dir) / "model.safetensors").string();
  io::SafetensorsCheckpoint ck(file);
  const auto md = ck.metadata();
  ATOM_CHECK(md.count("format") && md.at("format") == "atom",
             "'{}' is not an Atom checkpoint (no \"format\": \"atom\" in its metadata)", file);
  ATOM_CHECK(md.count("format_version") && md.at("format_version") == "1",
             "'{}': unsupported Atom checkpoint version '{}' (this build reads version 1)", file,
             md.count("format_version") ? md.at("format_version") : std::string("?"));
  LoadedCheckpoint out;
  try {
    out.metadata = json::parse(md.count("atom_config") ? md.at("atom_config") : std::string("null"));
  } catch (const json::exception& e) {
    fail("'{}': atom_config metadata is not valid JSON: {}", file, e.what());
  }
  ATOM_CHECK(out.metadata.is_object() && out.metadata.contains("model") && out.metadata.contains("quant"),
             "'{}': atom_config metadata lacks 'model' or 'quant'", file);
  out.config = QuantConfig::from_json(out.metadata["quant"]);
  auto m = std::make_unique<LlamaModel>();
  m->cfg = model_config_from_json(out.metadata["model"]);
  const ModelConfig& c = m->cfg;
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  const int64_t q_dim = int64_t(c.num_heads) * c.head_dim, kv_dim = int64_t(c.num_kv_heads) * c.head_dim;
  const int64_t out_dims[kNumLinearSlots] = {q_dim, kv_dim, kv_dim, H, F, F, H};
  const int64_t in_dims[kNumLinearSlots] = {H, H, H, q_dim, H, H, F};
  m->embed = to_f32(expect(ck, "model.embed_tokens", DType::F16, {c.vocab_size, H}), "model.embed_tokens");
  m->final_norm = values<float>(expect(ck, "model.norm", DType::F32, {H}));
  if (!c.tie_word_embeddings)
    m->lm_head = std::make_unique<DenseLinear>(
        H, c.vocab_size, to_f32(expect(ck, "lm_head", DType::F16, {c.vocab_size, H}), "lm_head"));
  m->layers.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayer& L = m->layers[size_t(l)];
    const std::string p = fmt::format("layers.{}.", l);
    L.attn_norm = values<float>(expect(ck, p + "attn_norm", DType::F32, {H}));
    L.ffn_norm = values<float>(expect(ck, p + "ffn_norm", DType::F32, {H}));
    for (int s = 0; s < kNumLinearSlots; ++s)
      L.linear[s] = read_linear(ck, p + linear_slot_name(LinearSlot(s)), out_dims[s], in_dims[s], out.config,
                                (s == int(LinearSlot::O) || s == int(LinearSlot::Down)) ? out.config.tp_segments : 1);
  }
  m->rope_inv_freq = rope_inv_freq(c);
  m->source = dir;
  m->weights_note = fmt::format("Atom checkpoint ({})", out.config.method);
  apply_kv_format(*m, out.config);
  out.model = std::move(m);
  return out;
}

}  // namespace atom::quant
