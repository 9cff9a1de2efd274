// HF tokenizer.json (+ tokenizer_config.json) -> BpeSpec. Supported subset:
//   model:          BPE (vocab, merges as "a b" or ["a","b"], unk_token, fuse_unk,
//                   byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix)
//   normalizer:     null, Sequence, Prepend, Replace (String or Regex); NFC/NFD/NFKC/NFKD are
//                   accepted as identity (text is assumed already normalized)
//   pre_tokenizer:  null, Sequence, ByteLevel, Split, Digits, Metaspace, Whitespace,
//                   WhitespaceSplit
//   post_processor: TemplateProcessing (a special token before $A is the BOS), Sequence;
//                   others are ignored (they add nothing to single-sequence ids we use)
//   decoder:        ByteLevel, Metaspace, Sequence of Replace/ByteFallback/Fuse/Strip
// Anything else, and every malformed value, is an atom::Error naming the file and the field.
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <sstream>
#include <unordered_map>

#include "atom/core/error.h"
#include "atom/tokenizer/bpe.h"
#include "atom/tokenizer/tokenizer_config.h"

namespace atom {
namespace {

using json = nlohmann::json;
using tok::BpeSpec;
using tok::PreTokenizerStep;
using tok::SplitBehavior;

struct Ctx {
  std::string source;
  [[noreturn]] void err(const std::string& where, const std::string& what) const {
    fail("{}: {}: {}", source, where, what);
  }
  const json& field(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) err(where, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) err(where, fmt::format("missing field '{}'", key));
    return *it;
  }
  std::string str(const json& v, const std::string& where) const {
    if (!v.is_string()) err(where, "expected a string");
    return v.get<std::string>();
  }
  // Optional string field: absent or null -> def.
  std::string opt_str(const json& obj, const char* key, const std::string& where,
                      const std::string& def = "") const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    return str(*it, where + "." + key);
  }
  bool opt_bool(const json& obj, const char* key, const std::string& where, bool def) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    if (!it->is_boolean()) err(where + "." + key, "expected a boolean");
    return it->get<bool>();
  }
  int64_t integer(const json& v, const std::string& where) const {
    if (!v.is_number_integer()) err(where, "expected an integer");
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      err(where, "integer out of range");
    return v.get<int64_t>();
  }
};

SplitBehavior parse_behavior(const Ctx& c, const json& v, const std::string& where) {
  const std::string b = c.str(v, where);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  c.err(where, fmt::format("unknown split behavior '{}'", b));
}

// {"String": "x"} or {"Regex": "..."} -> (literal, regex)
void parse_pattern(const Ctx& c, const json& p, const std::string& where, std::string& literal,
                   std::shared_ptr<tok::Regex>& regex) {
  if (!p.is_object()) c.err(where, "expected {\"String\": ...} or {\"Regex\": ...}");
  if (p.contains("Regex")) {
    const std::string re = c.str(p["Regex"], where + ".Regex");
    try {
      regex = std::make_shared<tok::Regex>(re);
    } catch (const Error& e) {
      c.err(where, e.what());
    }
  } else if (p.contains("String")) {
    literal = c.str(p["String"], where + ".String");
  } else {
    c.err(where, "expected {\"String\": ...} or {\"Regex\": ...}");
  }
}

void parse_normalizer(const Ctx& c, const json& n, const std::string& where, BpeSpec& spec,
                      int depth = 0) {
  if (n.is_null()) return;
  if (depth > 8) c.err(where, "nesting too deep");
  const std::string type = c.str(c.field(n, "type", where), where + ".type");
  if (type == "Sequence") {
    const json& list = c.field(n, "normalizers", where);
    if (!list.is_array()) c.err(where + ".normalizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_normalizer(c, list[i], fmt::format("{}.normalizers[{}]", where, i), spec, depth + 1);
  } else if (type == "Prepend") {
    tok::NormalizerStep s;
    s.kind = tok::NormalizerStep::Prepend;
    s.text = c.str(c.field(n, "prepend", where), where + ".prepend");
    spec.normalizers.push_back(std::move(s));
  } else if (type == "Replace") {
    tok::NormalizerStep s;
    s.kind = tok::NormalizerStep::Replace;
    parse_pattern(c, c.field(n, "pattern", where), where + ".pattern", s.text, s.regex);
    s.content = c.str(c.field(n, "content", where), where + ".content");
    spec.normalizers.push_back(std::move(s));
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    spdlog::debug("{}: normalizer {} treated as identity", c.source, type);
  } else {
    c.err(where, fmt::format("unsupported normalizer type '{}'", type));
  }
}

void parse_pre_tokenizer(const Ctx& c, const json& p, const std::string& where, BpeSpec& spec,
                         int depth = 0) {
  if (p.is_null()) return;
  if (depth > 8) c.err(where, "nesting too deep");
  const std::string type = c.str(c.field(p, "type", where), where + ".type");
  PreTokenizerStep s;
  if (type == "Sequence") {
    const json& list = c.field(p, "pretokenizers", where);
    if (!list.is_array()) c.err(where + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_pre_tokenizer(c, list[i], fmt::format("{}.pretokenizers[{}]", where, i), spec,
                          depth + 1);
    return;
  } else if (type == "ByteLevel") {
    s.kind = PreTokenizerStep::ByteLevel;
    s.add_prefix_space = c.opt_bool(p, "add_prefix_space", where, false);
    s.use_regex = c.opt_bool(p, "use_regex", where, true);
  } else if (type == "Split") {
    s.kind = PreTokenizerStep::Split;
    parse_pattern(c, c.field(p, "pattern", where), where + ".pattern", s.literal, s.regex);
    s.behavior = parse_behavior(c, c.field(p, "behavior", where), where + ".behavior");
    s.invert = c.opt_bool(p, "invert", where, false);
  } else if (type == "Digits") {
    // HF Digits splits on char::is_numeric, i.e. \p{N}.
    s.kind = PreTokenizerStep::Split;
    s.regex = std::make_shared<tok::Regex>("\\p{N}");
    s.behavior = c.opt_bool(p, "individual_digits", where, false) ? SplitBehavior::Isolated
                                                                  : SplitBehavior::Contiguous;
  } else if (type == "Whitespace") {
    s.kind = PreTokenizerStep::Split;
    s.regex = std::make_shared<tok::Regex>("\\w+|[^\\w\\s]+");
    s.behavior = SplitBehavior::Removed;
    s.invert = true;
  } else if (type == "WhitespaceSplit") {
    s.kind = PreTokenizerStep::Split;
    s.regex = std::make_shared<tok::Regex>("\\s+");
    s.behavior = SplitBehavior::Removed;
  } else if (type == "Metaspace") {
    s.kind = PreTokenizerStep::Metaspace;
    s.replacement = c.opt_str(p, "replacement", where, s.replacement);
    if (s.replacement.empty()) c.err(where + ".replacement", "must not be empty");
    if (p.contains("prepend_scheme") && !p["prepend_scheme"].is_null()) {
      const std::string ps = c.str(p["prepend_scheme"], where + ".prepend_scheme");
      if (ps == "always") s.prepend = PreTokenizerStep::Always;
      else if (ps == "first") s.prepend = PreTokenizerStep::First;
      else if (ps == "never") s.prepend = PreTokenizerStep::Never;
      else c.err(where + ".prepend_scheme", fmt::format("unknown value '{}'", ps));
    } else {  // older files: add_prefix_space
      s.prepend = c.opt_bool(p, "add_prefix_space", where, true) ? PreTokenizerStep::Always
                                                                 : PreTokenizerStep::Never;
    }
    s.split = c.opt_bool(p, "split", where, true);
  } else {
    c.err(where, fmt::format("unsupported pre_tokenizer type '{}'", type));
  }
  spec.pre_tokenizers.push_back(std::move(s));
}

// Returns the BOS token content from a TemplateProcessing "single" template (the special
// token placed before $A), searching Sequence processors too; "" when there is none.
std::string parse_post_processor(const Ctx& c, const json& p, const std::string& where,
                                 int depth = 0) {
  if (p.is_null() || depth > 8) return "";
  const std::string type = c.str(c.field(p, "type", where), where + ".type");
  if (type == "Sequence") {
    const json& list = c.field(p, "processors", where);
    if (!list.is_array()) c.err(where + ".processors", "expected an array");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string b = parse_post_processor(c, list[i], fmt::format("{}.processors[{}]", where, i),
                                           depth + 1);
      if (!b.empty()) return b;
    }
    return "";
  }
  if (type != "TemplateProcessing") return "";
  const json& single = c.field(p, "single", where);
  if (!single.is_array()) c.err(where + ".single", "expected an array");
  for (size_t i = 0; i < single.size(); ++i) {
    const json& item = single[i];
    const std::string w = fmt::format("{}.single[{}]", where, i);
    if (!item.is_object()) c.err(w, "expected an object");
    if (item.contains("Sequence")) return "";  // reached $A: nothing before it
    if (item.contains("SpecialToken"))
      return c.str(c.field(item["SpecialToken"], "id", w + ".SpecialToken"), w + ".id");
  }
  return "";
}

void parse_decoder(const Ctx& c, const json& d, const std::string& where, BpeSpec& spec,
                   bool& byte_level, int depth = 0) {
  if (d.is_null() || depth > 8) return;
  const std::string type = c.str(c.field(d, "type", where), where + ".type");
  if (type == "Sequence") {
    const json& list = c.field(d, "decoders", where);
    if (!list.is_array()) c.err(where + ".decoders", "expected an array");
    for (size_t i = 0; i < list.size(); ++i)
      parse_decoder(c, list[i], fmt::format("{}.decoders[{}]", where, i), spec, byte_level,
                    depth + 1);
  } else if (type == "ByteLevel") {
    byte_level = true;
  } else if (type == "Metaspace") {
    byte_level = false;
    std::string scheme = c.opt_str(d, "prepend_scheme", where, "always");
    spec.strip_leading_space =
        scheme != "never" && c.opt_bool(d, "add_prefix_space", where, true);
  } else if (type == "Strip") {
    byte_level = false;
    auto it = d.find("start");
    if (it != d.end() && c.integer(*it, where + ".start") > 0) spec.strip_leading_space = true;
  } else if (type == "Replace" || type == "ByteFallback" || type == "Fuse") {
    byte_level = false;  // the SentencePiece-style decoder chain
  } else {
    c.err(where, fmt::format("unsupported decoder type '{}'", type));
  }
}

}  // namespace

std::unique_ptr<Tokenizer> parse_tokenizer_json(const std::string& json_text,
                                                const std::string& config_text,
                                                const std::string& source) {
  const Ctx c{source};
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", source, e.what());
  }
  try {
    if (!j.is_object()) c.err("top level", "expected an object");
    BpeSpec spec;
    spec.source = source;

    // ---- model ----
    const json& model = c.field(j, "model", "top level");
    if (!model.is_object()) c.err("model", "expected an object");
    const std::string type = c.opt_str(model, "type", "model", model.contains("merges") ? "BPE" : "");
    if (type != "BPE") c.err("model.type", fmt::format("unsupported model type '{}'", type));
    auto dropout = model.find("dropout");
    if (dropout != model.end() && !dropout->is_null())
      c.err("model.dropout", "BPE dropout is not supported");
    const json& vocab = c.field(model, "vocab", "model");
    if (!vocab.is_object()) c.err("model.vocab", "expected an object of token -> id");
    const json* added_list = j.contains("added_tokens") ? &j["added_tokens"] : nullptr;
    if (added_list && !added_list->is_null() && !added_list->is_array())
      c.err("added_tokens", "expected an array");
    const size_t n_added = added_list && added_list->is_array() ? added_list->size() : 0;
    // Ids index arrays: bound them so a hostile file cannot make us allocate gigabytes.
    const int64_t max_id = static_cast<int64_t>(vocab.size() + n_added) + 65536;
    std::unordered_map<std::string, int32_t> ids;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      const int64_t id = c.integer(it.value(), "model.vocab[\"" + it.key() + "\"]");
      if (id < 0 || id > max_id)
        c.err("model.vocab[\"" + it.key() + "\"]", fmt::format("id {} out of range", id));
      if (spec.model.vocab.size() <= static_cast<size_t>(id)) spec.model.vocab.resize(id + 1);
      spec.model.vocab[id] = it.key();
      ids[it.key()] = static_cast<int32_t>(id);
    }
    const json& merges = c.field(model, "merges", "model");
    if (!merges.is_array()) c.err("model.merges", "expected an array");
    spec.model.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const json& m = merges[i];
      const std::string w = fmt::format("model.merges[{}]", i);
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          c.err(w, fmt::format("'{}' is not of the form \"a b\"", s));
        spec.model.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2) {
        spec.model.merges.emplace_back(c.str(m[0], w + "[0]"), c.str(m[1], w + "[1]"));
      } else {
        c.err(w, "expected \"a b\" or [\"a\", \"b\"]");
      }
    }
    const std::string unk = c.opt_str(model, "unk_token", "model");
    if (!unk.empty()) {
      auto it = ids.find(unk);
      if (it == ids.end()) c.err("model.unk_token", fmt::format("'{}' is not in the vocab", unk));
      spec.model.unk_id = it->second;
    }
    spec.model.fuse_unk = c.opt_bool(model, "fuse_unk", "model", false);
    spec.model.byte_fallback = c.opt_bool(model, "byte_fallback", "model", false);
    spec.model.ignore_merges = c.opt_bool(model, "ignore_merges", "model", false);
    spec.model.continuing_subword_prefix = c.opt_str(model, "continuing_subword_prefix", "model");
    spec.model.end_of_word_suffix = c.opt_str(model, "end_of_word_suffix", "model");

    // ---- added tokens ----
    for (size_t i = 0; i < n_added; ++i) {
      const json& a = (*added_list)[i];
      const std::string w = fmt::format("added_tokens[{}]", i);
      if (!a.is_object()) c.err(w, "expected an object");
      tok::AddedToken t;
      const int64_t id = c.integer(c.field(a, "id", w), w + ".id");
      if (id < 0 || id > max_id) c.err(w + ".id", fmt::format("id {} out of range", id));
      t.id = static_cast<int32_t>(id);
      t.content = c.str(c.field(a, "content", w), w + ".content");
      if (t.content.empty()) c.err(w + ".content", "must not be empty");
      t.special = c.opt_bool(a, "special", w, false);
      t.lstrip = c.opt_bool(a, "lstrip", w, false);
      t.rstrip = c.opt_bool(a, "rstrip", w, false);
      t.single_word = c.opt_bool(a, "single_word", w, false);
      ids[t.content] = t.id;
      spec.added.push_back(std::move(t));
    }

    if (j.contains("normalizer")) parse_normalizer(c, j["normalizer"], "normalizer", spec);
    if (j.contains("pre_tokenizer"))
      parse_pre_tokenizer(c, j["pre_tokenizer"], "pre_tokenizer", spec);
    bool byte_level = false;
    for (const auto& p : spec.pre_tokenizers)
      byte_level = byte_level || p.kind == PreTokenizerStep::ByteLevel;
    if (j.contains("decoder")) parse_decoder(c, j["decoder"], "decoder", spec, byte_level);
    spec.byte_level_decode = byte_level;

    auto token_for = [&](const std::string& content, const std::string& where) -> int32_t {
      auto it = ids.find(content);
      if (it == ids.end()) c.err(where, fmt::format("token '{}' is not in the vocab", content));
      return it->second;
    };
    if (j.contains("post_processor")) {
      const std::string bos = parse_post_processor(c, j["post_processor"], "post_processor");
      if (!bos.empty()) {
        spec.bos_id = token_for(bos, "post_processor");
        spec.add_bos = true;
      }
    }
    // Defaults when there is no tokenizer_config.json: the usual end-of-text tokens.
    for (const char* e : {"</s>", "<|endoftext|>", "<|end_of_text|>"})
      if (spec.eos_id < 0 && ids.count(e)) spec.eos_id = ids[e];

    // ---- tokenizer_config.json ----
    if (!config_text.empty()) {
      const tok::TokenizerConfig cfg =
          tok::parse_tokenizer_config(config_text, source + " (tokenizer_config.json)");
      if (!cfg.bos_token.empty()) spec.bos_id = token_for(cfg.bos_token, "bos_token");
      if (!cfg.eos_token.empty()) spec.eos_id = token_for(cfg.eos_token, "eos_token");
      if (cfg.add_bos_token >= 0) spec.add_bos = cfg.add_bos_token != 0;
      spec.chat_template = cfg.chat_template;
    }
    return tok::make_bpe_tokenizer(std::move(spec));
  } catch (const json::exception& e) {
    fail("{}: malformed tokenizer: {}", source, e.what());
  } catch (const std::bad_alloc&) {
    fail("{}: out of memory while loading the tokenizer", source);
  }
}

namespace tok {

TokenizerConfig parse_tokenizer_config(const std::string& text, const std::string& source) {
  const Ctx cc{source};
  json cfg;
  try {
    cfg = json::parse(text);
  } catch (const json::exception& e) {
    cc.err("top level", std::string("invalid JSON: ") + e.what());
  }
  if (!cfg.is_object()) cc.err("top level", "expected an object");
  TokenizerConfig out;
  try {
    auto special = [&](const char* key) -> std::string {  // string or {"content": ...}
      auto it = cfg.find(key);
      if (it == cfg.end() || it->is_null()) return "";
      if (it->is_object())
        return cc.str(cc.field(*it, "content", key), std::string(key) + ".content");
      return cc.str(*it, key);
    };
    out.bos_token = special("bos_token");
    out.eos_token = special("eos_token");
    auto ab = cfg.find("add_bos_token");
    if (ab != cfg.end() && !ab->is_null()) out.add_bos_token = cc.opt_bool(cfg, "add_bos_token", "top level", false);
    auto ct = cfg.find("chat_template");
    if (ct != cfg.end() && !ct->is_null()) {
      if (ct->is_string()) {
        out.chat_template = ct->get<std::string>();
      } else if (ct->is_array()) {  // [{"name": "default", "template": ...}, ...]
        for (size_t i = 0; i < ct->size(); ++i) {
          const std::string w = fmt::format("chat_template[{}]", i);
          const json& e = (*ct)[i];
          if (cc.str(cc.field(e, "name", w), w + ".name") == "default")
            out.chat_template = cc.str(cc.field(e, "template", w), w + ".template");
        }
      } else {
        cc.err("chat_template", "expected a string or a list of named templates");
      }
    }
  } catch (const json::exception& e) {
    fail("{}: malformed config: {}", source, e.what());
  }
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("cannot open {}", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("error reading {}", path);
  return ss.str();
}

}  // namespace tok

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& path,
                                               const std::string& config_path) {
  const std::string text = tok::read_text_file(path);
  const std::string cfg = config_path.empty() ? "" : tok::read_text_file(config_path);
  return parse_tokenizer_json(text, cfg, path);
}

}  // namespace atom
