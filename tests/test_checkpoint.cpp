// The Atom checkpoint (src/atom/quant/checkpoint, docs/checkpoint-format.md): save -> load gives a
// model with bit-identical logits for every method (Atom GPTQ / RTN, fp16 outliers, RTN W4A4,
// W8A8, fp16; tied and untied lm_head); saving the loaded model again gives a byte-identical
// model.safetensors; the tensor names, dtypes and shapes are the documented ones; the tokenizer
// travels with the checkpoint; and every kind of damaged checkpoint is an atom::Error, not a crash.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/io/gguf.h"
#include "atom/io/safetensors.h"
#include "atom/model/loader.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/checkpoint.h"
#include "atom/quant/int4.h"
#include "atom/quant/pipeline.h"
#include "atom/tokenizer/tokenizer.h"
#include "quant_test_util.h"
#include "test_tokenizer_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace atom;
using namespace atom::quant;
using atom::test::fresh_seed;
using atom::test::logits_of;
using nlohmann::json;

namespace {

// A unique directory under the system temp dir, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / fmt::format("atom_ckpt_test_{}_{:016x}", ::getpid(),
                                                   (uint64_t(rd()) << 32) ^ rd());
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str(const std::string& sub = "") const { return sub.empty() ? path.string() : (path / sub).string(); }
};

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A minimal byte-level BPE tokenizer.json (256 byte tokens, a few merges, one special token),
// what save_checkpoint copies from a directory source.
void write_tokenizer_dir(const fs::path& dir) {
  fs::create_directories(dir);
  const json tj = atom::test::byte_level_json({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"Ġ", "w"}}, {"<|eos|>"});
  std::ofstream(dir / "tokenizer.json") << tj.dump(1);
  std::ofstream(dir / "tokenizer_config.json") << json{{"eos_token", "<|eos|>"}}.dump();
}

ModelConfig small_config(bool tied) {
  ModelConfig c;
  c.vocab_size = 300;
  c.hidden_size = 200;
  c.intermediate_size = 300;
  c.num_layers = 2;
  c.num_heads = 5;
  c.num_kv_heads = 1;
  c.head_dim = 40;
  c.max_position_embeddings = 1024;
  c.rope_theta = 50000.0f;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  return c;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = int32_t(rng() % uint64_t(vocab));
  return t;
}

QuantizeReport report_from_json(const json& j) {
  QuantizeReport r;
  r.seconds = j.at("seconds").get<double>();
  r.calib_tokens = j.at("calib_tokens").get<int64_t>();
  for (const json& l : j.at("linears"))
    r.linears.push_back({l.at("layer").get<int>(), l.at("linear").get<std::string>(), l.at("rel_error").get<double>(),
                         l.at("w_clip").get<float>()});
  r.backend = j.value("backend", std::string());
  if (j.contains("stage_seconds")) r.stage_seconds = j.at("stage_seconds").get<std::map<std::string, double>>();
  return r;
}

struct Method {
  const char* name;
  QuantConfig cfg;
  bool tied;
};

std::vector<Method> methods() {
  std::vector<Method> v;
  QuantConfig atom;  // defaults: O128 would not fit hidden 200 well; use O16 G64 (ragged FFN groups)
  atom.atom.n_outlier = 16;
  atom.atom.group = 64;
  v.push_back({"atom-gptq-kv4", atom, false});
  QuantConfig rtn_search = atom;
  rtn_search.gptq = false;
  rtn_search.w_clip_search = true;
  rtn_search.atom.outlier_bits = 16;  // the ablation: outliers kept in fp16
  rtn_search.kv_pre_rope = true;
  v.push_back({"atom-rtn-search-fp16-outliers-prerope", rtn_search, true});
  QuantConfig rtn;  // `atom quantize --method rtn`
  rtn.atom.n_outlier = 0;
  rtn.atom.group = 0;
  rtn.atom.w_clip = rtn.atom.a_clip = 1.0f;
  rtn.gptq = false;
  rtn.kv_bits = 16;
  v.push_back({"rtn-w4a4", rtn, true});
  QuantConfig w8a8;
  w8a8.method = "w8a8";
  w8a8.gptq = false;
  w8a8.kv_bits = 8;
  v.push_back({"w8a8-untied", w8a8, false});
  v.push_back({"w8a8-tied", w8a8, true});
  QuantConfig fp16;
  fp16.method = "fp16";
  fp16.kv_bits = 16;
  v.push_back({"fp16", fp16, false});
  return v;
}

// A quantized random model and its report.
struct Quantized {
  std::unique_ptr<LlamaModel> model;
  QuantConfig cfg;  // as run (calibration fields filled in)
  QuantizeReport report;
};

Quantized quantize_random(const Method& m, uint64_t seed) {
  Quantized q;
  q.model = make_random_llama(small_config(m.tied), seed);
  std::mt19937_64 rng(seed + 1);
  q.cfg = m.cfg;
  q.cfg.samples = 4;
  q.cfg.seqlen = 48;
  q.cfg.seed = seed;
  q.cfg.calib_file = "random tokens";
  const auto windows = sample_windows(random_tokens(rng, 500, 300), q.cfg.samples, q.cfg.seqlen, seed);
  q.report = quantize_model(*q.model, windows, q.cfg);
  return q;
}

// Tensor table of a checkpoint: name -> (dtype, shape).
std::map<std::string, std::pair<std::string, std::vector<int64_t>>> tensor_table(const std::string& dir) {
  io::SafetensorsFile f((fs::path(dir) / "model.safetensors").string());
  std::map<std::string, std::pair<std::string, std::vector<int64_t>>> t;
  for (const auto& n : f.names()) {
    const Tensor x = f.get(n);
    t[n] = {std::string(dtype_name(x.dtype)), x.shape};
  }
  return t;
}

}  // namespace

TEST(Checkpoint, RoundTripBitIdenticalEveryMethod) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  TempDir tmp;
  write_tokenizer_dir(tmp.path / "src");
  const std::string src = tmp.str("src");
  std::mt19937_64 rng(seed);
  const auto toks = random_tokens(rng, 40, 300);
  for (const Method& m : methods()) {
    SCOPED_TRACE(m.name);
    const Quantized q = quantize_random(m, seed);
    const QuantConfig& cfg = q.cfg;
    const std::string a = tmp.str(std::string(m.name) + "_a"), b = tmp.str(std::string(m.name) + "_b");
    save_checkpoint(a, *q.model, cfg, q.report, src);
    EXPECT_EQ(detect_model_format(a), ModelFormat::AtomCheckpoint);
    LoadedCheckpoint ld = load_checkpoint(a);
    ASSERT_TRUE(ld.model);
    // Same linears, same logits, bit for bit.
    for (int l = 0; l < q.model->cfg.num_layers; ++l)
      for (int s = 0; s < kNumLinearSlots; ++s)
        EXPECT_EQ(ld.model->layers[size_t(l)].linear[s]->kind(), q.model->layers[size_t(l)].linear[s]->kind());
    EXPECT_EQ(bool(ld.model->lm_head), !m.tied);
    EXPECT_EQ(bool(ld.model->kv_store_hook), bool(q.model->kv_store_hook));
    if (q.model->kv_store_hook) {
      EXPECT_EQ(ld.model->kv_hook_pre_rope, q.model->kv_hook_pre_rope);
    }
    const auto la = logits_of(*q.model, toks), lb = logits_of(*ld.model, toks);
    ASSERT_TRUE(std::all_of(la.begin(), la.end(), [](float v) { return std::isfinite(v); }));
    EXPECT_EQ(la, lb);
    // The metadata: configs, report and source as saved.
    EXPECT_EQ(ld.metadata.at("model"), model_config_to_json(q.model->cfg));
    EXPECT_EQ(ld.config.to_json().dump(), ld.metadata.at("quant").dump());
    EXPECT_EQ(ld.config.method, cfg.method);
    EXPECT_EQ(ld.config.kv_bits, cfg.kv_bits);
    EXPECT_EQ(ld.config.atom.n_outlier, cfg.atom.n_outlier);
    EXPECT_EQ(ld.config.atom.outlier_bits, cfg.atom.outlier_bits);
    EXPECT_EQ(ld.config.seed, seed);
    EXPECT_EQ(ld.config.to_json(), cfg.to_json());
    EXPECT_EQ(ld.metadata.at("source"), src);
    EXPECT_EQ(ld.metadata.at("report").at("linears").size(), q.report.linears.size());
    EXPECT_EQ(json::parse(read_file(fs::path(a) / "atom_config.json")), ld.metadata);
    // The tokenizer travels byte for byte and loads.
    EXPECT_EQ(read_file(fs::path(a) / "tokenizer.json"), read_file(fs::path(src) / "tokenizer.json"));
    EXPECT_EQ(read_file(fs::path(a) / "tokenizer_config.json"), read_file(fs::path(src) / "tokenizer_config.json"));
    EXPECT_EQ(load_tokenizer(a)->encode("hello world"), load_tokenizer(src)->encode("hello world"));
    // Saving the loaded model again: byte-identical files.
    save_checkpoint(b, *ld.model, ld.config, report_from_json(ld.metadata.at("report")), src);
    EXPECT_TRUE(read_file(fs::path(a) / "model.safetensors") == read_file(fs::path(b) / "model.safetensors"));
    EXPECT_EQ(read_file(fs::path(a) / "atom_config.json"), read_file(fs::path(b) / "atom_config.json"));
    // ... also over an existing checkpoint, and with the checkpoint itself as the tokenizer source.
    save_checkpoint(b, *ld.model, ld.config, report_from_json(ld.metadata.at("report")), src);
    EXPECT_TRUE(read_file(fs::path(a) / "model.safetensors") == read_file(fs::path(b) / "model.safetensors"));
    save_checkpoint(b, *ld.model, ld.config, report_from_json(ld.metadata.at("report")), b);
    EXPECT_EQ(read_file(fs::path(b) / "tokenizer.json"), read_file(fs::path(src) / "tokenizer.json"));
    EXPECT_EQ(logits_of(*load_checkpoint(b).model, toks), la);
    std::error_code ec;
    EXPECT_FALSE(fs::exists(fs::path(a) / ("model.safetensors.tmp." + std::to_string(::getpid())), ec));
  }
}

TEST(Checkpoint, TensorNamesDtypesShapesAsDocumented) {
  // docs/checkpoint-format.md §3, for hidden 200, FFN 300, 5×40 query heads, 1 KV head.
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  TempDir tmp;
  write_tokenizer_dir(tmp.path / "src");
  const int64_t H = 200, F = 300, V = 300, Q = 200, KV = 40;
  struct Lin { const char* name; int64_t n, k; };
  const Lin lins[] = {{"q_proj", Q, H},    {"k_proj", KV, H},   {"v_proj", KV, H},   {"o_proj", H, Q},
                      {"gate_proj", F, H}, {"up_proj", F, H}, {"down_proj", H, F}};
  for (const Method& m : methods()) {
    SCOPED_TRACE(m.name);
    const Quantized q = quantize_random(m, seed);
    const std::string dir = tmp.str(m.name);
    save_checkpoint(dir, *q.model, q.cfg, q.report, tmp.str("src"));
    const auto t = tensor_table(dir);
    std::map<std::string, std::pair<std::string, std::vector<int64_t>>> want;
    want["model.embed_tokens"] = {"F16", {V, H}};
    want["model.norm"] = {"F32", {H}};
    if (!m.tied) want["lm_head"] = {"F16", {V, H}};
    const AtomConfig& ac = m.cfg.atom;
    for (int l = 0; l < 2; ++l) {
      const std::string p = fmt::format("layers.{}.", l);
      want[p + "attn_norm"] = {"F32", {H}};
      want[p + "ffn_norm"] = {"F32", {H}};
      for (const Lin& L : lins) {
        const std::string n = p + L.name;
        if (m.cfg.method == "fp16") {
          want[n + ".weight"] = {"F16", {L.n, L.k}};
        } else if (m.cfg.method == "w8a8") {
          want[n + ".qweight"] = {"I8", {L.n, L.k}};
          want[n + ".scales"] = {"F16", {L.n}};
          want[n + ".smooth"] = {"F32", {L.k}};
        } else {
          const int64_t kn = L.k - ac.n_outlier;
          const int64_t groups = ac.group <= 0 || ac.group >= kn ? 1 : (kn + ac.group - 1) / ac.group;
          want[n + ".perm"] = {"I32", {L.k}};
          want[n + ".qweight"] = {"U8", {L.n, (kn + 1) / 2}};
          want[n + ".scales"] = {"F16", {L.n, groups}};
          if (ac.n_outlier > 0 && ac.outlier_bits == 8) {
            want[n + ".qweight_outlier"] = {"I8", {L.n, ac.n_outlier}};
            want[n + ".scales_outlier"] = {"F16", {L.n}};
          } else if (ac.n_outlier > 0) {
            want[n + ".weight_outlier"] = {"F16", {L.n, ac.n_outlier}};
          }
        }
      }
    }
    EXPECT_EQ(t, want);
    io::SafetensorsFile f((fs::path(dir) / "model.safetensors").string());
    const auto& md = f.metadata();
    EXPECT_EQ(md.size(), 3u);
    EXPECT_EQ(md.at("format"), "atom");
    EXPECT_EQ(md.at("format_version"), "1");
    const json meta = json::parse(md.at("atom_config"));
    for (const char* key : {"model", "quant", "report", "source"}) EXPECT_TRUE(meta.contains(key)) << key;
    EXPECT_EQ(meta.size(), 4u);
    if (m.cfg.method == "atom" && m.cfg.atom.group == 64) {
      // The FFN input's ragged last group is stored like any other: 284 = 4·64 + 28 channels (O16).
      EXPECT_EQ(t.at("layers.0.down_proj.scales").second, (std::vector<int64_t>{H, 5}));
      // down_proj's reorder index is the identity: gate/up output rows carry it.
      const Tensor perm = f.get("layers.1.down_proj.perm");
      for (int64_t i = 0; i < F; ++i) ASSERT_EQ(perm.as<int32_t>()[i], int32_t(i));
    }
    EXPECT_EQ(fs::exists(fs::path(dir) / "tokenizer.json"), true);
  }
}

TEST(Checkpoint, TokenizerFromGgufSource) {
  // A GGUF source's tokenizer travels as tokenizer.gguf (every tokenizer.* key, no tensors).
  const std::string gguf = std::string(ATOM_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " not present";
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  TempDir tmp;
  Method m = methods()[2];  // rtn (fast)
  const Quantized q = quantize_random(m, seed);
  save_checkpoint(tmp.str("ck"), *q.model, m.cfg, q.report, gguf);
  const fs::path tg = tmp.path / "ck" / "tokenizer.gguf";
  ASSERT_TRUE(fs::exists(tg));
  EXPECT_FALSE(fs::exists(tmp.path / "ck" / "tokenizer.json"));
  EXPECT_LT(fs::file_size(tg), fs::file_size(gguf) / 10);
  io::GgufFile src(gguf), dst(tg.string());
  EXPECT_TRUE(dst.tensors().empty());
  size_t n_tok_keys = 0;
  for (const auto& [k, v] : src.metadata())
    if (k.rfind("tokenizer.", 0) == 0) {
      ++n_tok_keys;
      ASSERT_TRUE(dst.metadata().count(k)) << k;
    }
  EXPECT_EQ(dst.metadata().size(), n_tok_keys + 1);  // + general.architecture
  EXPECT_TRUE(dst.metadata().count("general.architecture"));
  const auto a = load_tokenizer(gguf), b = load_tokenizer_gguf(dst);
  const std::string text = "Hello, world! <|im_start|>user\nQuantize me: 576 − 128 = 448.<|im_end|>";
  EXPECT_EQ(a->encode(text, true), b->encode(text, true));
  EXPECT_EQ(a->vocab_size(), b->vocab_size());
  // A checkpoint made from that checkpoint carries tokenizer.gguf on.
  save_checkpoint(tmp.str("ck2"), *q.model, m.cfg, q.report, tmp.str("ck"));
  EXPECT_EQ(read_file(tmp.path / "ck2" / "tokenizer.gguf"), read_file(tg));
}

// ------------------------------------------------------------------------------ damaged input

namespace {

using Tensors = std::vector<std::pair<std::string, Tensor>>;
using Meta = std::map<std::string, std::string>;

// Copies the checkpoint `src` to `dst` with model.safetensors rewritten through `edit`.
void rewrite(const fs::path& src, const fs::path& dst, const std::function<void(Tensors&, Meta&)>& edit) {
  io::SafetensorsFile in((src / "model.safetensors").string());
  Tensors t;
  for (const auto& n : in.names()) t.emplace_back(n, in.get(n));
  Meta md = in.metadata();
  edit(t, md);
  fs::create_directories(dst);
  io::write_safetensors((dst / "model.safetensors").string(), t, md);
  fs::copy_file(src / "atom_config.json", dst / "atom_config.json", fs::copy_options::overwrite_existing);
}

Tensor& find(Tensors& t, const std::string& name) {
  for (auto& [n, x] : t)
    if (n == name) return x;
  throw std::runtime_error("test: no tensor " + name);
}

// A copy of tensor x with its bytes changed by `f` (and optionally another dtype / shape).
Tensor edited(const Tensor& x, const std::function<void(std::vector<uint8_t>&)>& f, DType dt, std::vector<int64_t> shape) {
  std::vector<uint8_t> b(x.data, x.data + x.nbytes());
  f(b);
  return Tensor::from_bytes(dt, std::move(shape), std::move(b));
}
Tensor edited(const Tensor& x, const std::function<void(std::vector<uint8_t>&)>& f) {
  return edited(x, f, x.dtype, x.shape);
}

void edit_config(Meta& md, const std::function<void(json&)>& f) {
  json j = json::parse(md.at("atom_config"));
  f(j);
  md["atom_config"] = j.dump();
}

// load_checkpoint(dir) must throw atom::Error whose message contains `needle`.
void expect_load_error(const std::string& dir, const std::string& needle) {
  try {
    load_checkpoint(dir);
    ADD_FAILURE() << "loaded a damaged checkpoint (expected an error mentioning '" << needle << "')";
  } catch (const atom::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an atom::Error: " << e.what();
  }
}

}  // namespace

TEST(Checkpoint, DamagedCheckpointsAreErrors) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  TempDir tmp;
  write_tokenizer_dir(tmp.path / "src");
  const Method atom_m = methods()[0], w8_m = methods()[3];
  const fs::path good = tmp.path / "good", good_w8 = tmp.path / "good_w8";
  {
    const Quantized q = quantize_random(atom_m, seed);
    save_checkpoint(good.string(), *q.model, atom_m.cfg, q.report, tmp.str("src"));
    const Quantized w = quantize_random(w8_m, seed);
    save_checkpoint(good_w8.string(), *w.model, w8_m.cfg, w.report, tmp.str("src"));
  }
  ASSERT_NO_THROW(load_checkpoint(good.string()));
  ASSERT_NO_THROW(rewrite(good, tmp.path / "same", [](Tensors&, Meta&) {}));
  ASSERT_NO_THROW(load_checkpoint(tmp.str("same")));  // the rewrite itself keeps a valid checkpoint

  int n = 0;
  auto bad = [&](const fs::path& from, const std::string& needle, const std::function<void(Tensors&, Meta&)>& edit) {
    const fs::path d = tmp.path / fmt::format("bad{}", n++);
    SCOPED_TRACE(needle);
    rewrite(from, d, edit);
    expect_load_error(d.string(), needle);
  };
  auto erase = [](Tensors& t, const std::string& name) {
    std::erase_if(t, [&](const auto& p) { return p.first == name; });
  };
  // Missing tensors.
  bad(good, "layers.1.gate_proj.scales", [&](Tensors& t, Meta&) { erase(t, "layers.1.gate_proj.scales"); });
  bad(good, "lm_head", [&](Tensors& t, Meta&) { erase(t, "lm_head"); });
  bad(good, "layers.0.o_proj.qweight_outlier", [&](Tensors& t, Meta&) { erase(t, "layers.0.o_proj.qweight_outlier"); });
  bad(good_w8, "layers.0.v_proj.qweight", [&](Tensors& t, Meta&) { erase(t, "layers.0.v_proj.qweight"); });
  // Wrong dtype (same bytes), wrong shape (same bytes).
  bad(good, "layers.0.q_proj.qweight", [](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.q_proj.qweight");
    x = edited(x, [](auto&) {}, DType::I8, x.shape);
  });
  bad(good, "model.norm", [](Tensors& t, Meta&) {
    Tensor& x = find(t, "model.norm");
    x = edited(x, [](auto&) {}, DType::I32, x.shape);
  });
  bad(good, "layers.0.o_proj.scales", [](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.o_proj.scales");
    x = edited(x, [](auto&) {}, x.dtype, {x.shape[1], x.shape[0]});
  });
  bad(good, "layers.1.down_proj.perm", [](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.1.down_proj.perm");
    x = edited(x, [](auto& b) { b.resize(b.size() - 4); }, x.dtype, {x.shape[0] - 1});
  });
  bad(good_w8, "layers.1.up_proj.scales", [](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.1.up_proj.scales");
    x = edited(x, [](auto&) {}, DType::BF16, x.shape);
  });
  // Values: perm not a permutation (duplicate, out of range, negative); NaN / negative scales;
  // INT8 −128; a zero smoothing factor.
  auto set_i32 = [](std::vector<uint8_t>& b, size_t i, int32_t v) { std::memcpy(&b[4 * i], &v, 4); };
  bad(good, "perm is not a permutation", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.k_proj.perm");
    x = edited(x, [&](auto& b) { int32_t v; std::memcpy(&v, &b[0], 4); set_i32(b, 1, v); });
  });
  bad(good, "perm is not a permutation", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.1.o_proj.perm");
    x = edited(x, [&](auto& b) { set_i32(b, 7, 200); });
  });
  bad(good, "perm is not a permutation", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.1.gate_proj.perm");
    x = edited(x, [&](auto& b) { set_i32(b, 0, -1); });
  });
  auto set_f16 = [](std::vector<uint8_t>& b, size_t i, uint16_t v) { std::memcpy(&b[2 * i], &v, 2); };
  bad(good, "w_scale", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.up_proj.scales");
    x = edited(x, [&](auto& b) { set_f16(b, 3, 0x7E00); });  // NaN
  });
  bad(good, "w_outlier_scale", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.v_proj.scales_outlier");
    x = edited(x, [&](auto& b) { set_f16(b, 0, float_to_fp16(-0.5f)); });
  });
  bad(good, "-128", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.1.q_proj.qweight_outlier");
    x = edited(x, [&](auto& b) { b[5] = 0x80; });
  });
  bad(good_w8, "-128", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.down_proj.qweight");
    x = edited(x, [&](auto& b) { b[11] = 0x80; });
  });
  bad(good_w8, "smoothing factor", [&](Tensors& t, Meta&) {
    Tensor& x = find(t, "layers.0.q_proj.smooth");
    x = edited(x, [&](auto& b) { std::memset(&b[8], 0, 4); });
  });
  // Metadata: not an Atom checkpoint, another version, corrupt or incomplete JSON, bad values.
  bad(good, "not an Atom checkpoint", [](Tensors&, Meta& md) { md["format"] = "pt"; });
  bad(good, "not an Atom checkpoint", [](Tensors&, Meta& md) { md.clear(); });
  bad(good, "unsupported Atom checkpoint version '2'", [](Tensors&, Meta& md) { md["format_version"] = "2"; });
  bad(good, "unsupported Atom checkpoint version", [](Tensors&, Meta& md) { md.erase("format_version"); });
  bad(good, "not valid JSON", [](Tensors&, Meta& md) { md["atom_config"] = "{\"model\": {\"vocab_size\": 3"; });
  bad(good, "not valid JSON", [](Tensors&, Meta& md) { md.erase("atom_config"); md["atom_config"] = ""; });
  bad(good, "lacks 'model' or 'quant'", [](Tensors&, Meta& md) { md.erase("atom_config"); });
  bad(good, "lacks 'model' or 'quant'", [](Tensors&, Meta& md) { md["atom_config"] = "[1, 2]"; });
  bad(good, "lacks 'model' or 'quant'", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j.erase("quant"); }); });
  bad(good, "quantization config", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"].erase("kv_bits"); }); });
  bad(good, "quantization config", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"] = "atom"; }); });
  bad(good, "unknown quantization method 'int3'",
      [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["method"] = "int3"; }); });
  bad(good, "kv bits", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["kv_bits"] = 5; }); });
  bad(good, "outliers must be >= 0",
      [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["n_outlier"] = -4; }); });
  bad(good, "checkpoint model config",
      [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["model"]["hidden_size"] = "wide"; }); });
  bad(good, "checkpoint model config", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["model"].erase("head_dim"); }); });
  bad(good, "hidden_size", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["model"]["hidden_size"] = -200; }); });
  bad(good, "model.embed_tokens", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["model"]["hidden_size"] = 256; }); });
  bad(good, "layers.2.attn_norm",
      [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["model"]["num_hidden_layers"] = 3; }); });
  // The config says another layout than the tensors have.
  bad(good, "layers.0.q_proj.scales", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["group"] = 32; }); });
  bad(good, "layers.0.q_proj.qweight", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["method"] = "w8a8"; }); });
  bad(good_w8, "layers.0.q_proj.perm", [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["method"] = "atom"; }); });
  bad(good, "layers.0.q_proj.weight_outlier",
      [](Tensors&, Meta& md) { edit_config(md, [](json& j) { j["quant"]["outlier_bits"] = 16; }); });

  // Truncated or missing files.
  const std::string bytes = read_file(good / "model.safetensors");
  for (size_t len : {size_t(0), size_t(4), size_t(8), size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    SCOPED_TRACE(len);
    const fs::path d = tmp.path / fmt::format("trunc{}", len);
    fs::create_directories(d);
    fs::copy_file(good / "atom_config.json", d / "atom_config.json");
    std::ofstream(d / "model.safetensors", std::ios::binary).write(bytes.data(), std::streamsize(len));
    try {
      load_checkpoint(d.string());
      ADD_FAILURE() << "loaded a truncated checkpoint";
    } catch (const atom::Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not an atom::Error: " << e.what();
    }
  }
  EXPECT_THROW(load_checkpoint(tmp.str("no_such_dir")), atom::Error);
  fs::create_directories(tmp.path / "empty");
  EXPECT_THROW(load_checkpoint(tmp.str("empty")), atom::Error);

  // Saving: a source without a tokenizer is refused before anything is written.
  fs::create_directories(tmp.path / "no_tok");
  const Quantized q = quantize_random(methods()[2], seed);
  EXPECT_THROW(save_checkpoint(tmp.str("out_no_tok"), *q.model, methods()[2].cfg, q.report, tmp.str("no_tok")),
               atom::Error);
  EXPECT_FALSE(fs::exists(tmp.path / "out_no_tok" / "atom_config.json"));
  EXPECT_FALSE(fs::exists(tmp.path / "out_no_tok" / "model.safetensors"));
  EXPECT_THROW(save_checkpoint(tmp.str("out2"), *q.model, methods()[2].cfg, q.report, tmp.str("nowhere")),
               atom::Error);
  std::ofstream(tmp.path / "a_file") << "x";
  EXPECT_THROW(save_checkpoint(tmp.str("a_file"), *q.model, methods()[2].cfg, q.report, tmp.str("src")),
               atom::Error);
}
