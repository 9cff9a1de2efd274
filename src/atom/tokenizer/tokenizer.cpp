// Tokenizer base: decoding, streaming decoding, stop ids, and load_tokenizer().
#include "atom/tokenizer/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/tokenizer/tokenizer_config.h"
#include "atom/tokenizer/utf8.h"

namespace atom {

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    std::string b = token_bytes(id);
    // The prefix space the encoder added is the first character of the output (HF's Strip /
    // Metaspace decoders drop exactly that one).
    if (b.empty()) continue;
    if (first && strip_leading_space_ && b[0] == ' ') b.erase(0, 1);
    first = false;
    out += b;
  }
  return tok::utf8_lossy(out);
}

void Tokenizer::init_stop_ids(const std::vector<int32_t>& extra) {
  stop_ids_.clear();
  auto add = [&](int32_t id) {
    if (id >= 0 && std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
      stop_ids_.push_back(id);
  };
  add(eos_id_);
  for (int32_t id : extra) add(id);
  for (const char* t : {"<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "</s>", "<|endoftext|>"})
    add(token_id(t));
}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return "";
  std::string b = tok_.token_bytes(id);
  if (first_ && tok_.strip_leading_space_ && !b.empty() && b[0] == ' ') {
    b.erase(0, 1);
    first_ = false;
  } else if (!b.empty()) {
    first_ = false;
  }
  pending_ += b;
  // Hold back only a trailing partial character; anything invalid before it can never become
  // valid, so it is emitted (as U+FFFD) right away.
  const size_t keep = tok::utf8_incomplete_tail(pending_);
  std::string out = tok::utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = tok::utf8_lossy(pending_);
  pending_.clear();
  return out;
}

namespace {
bool has_gguf_magic(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path p(model_path);
  if (fs::is_directory(p, ec)) {
    const fs::path json = p / "tokenizer.json", spm = p / "tokenizer.model",
                   cfg = p / "tokenizer_config.json";
    const bool has_cfg = fs::is_regular_file(cfg, ec);
    if (fs::is_regular_file(json, ec))
      return load_tokenizer_json(json.string(), has_cfg ? cfg.string() : "");
    if (fs::is_regular_file(spm, ec)) {
      tok::TokenizerConfig c;
      if (has_cfg) c = tok::parse_tokenizer_config(tok::read_text_file(cfg.string()), cfg.string());
      return tok::load_sentencepiece_with_config(spm.string(), c);
    }
    fail("{}: no tokenizer.json or tokenizer.model in this directory", model_path);
  }
  if (!fs::exists(p, ec)) fail("{}: no such file or directory", model_path);
  if (has_gguf_magic(model_path)) {
    io::GgufFile g(model_path);
    return load_tokenizer_gguf(g);
  }
  const std::string name = p.filename().string();
  if (p.extension() == ".json") {
    const fs::path cfg = p.parent_path() / "tokenizer_config.json";
    return load_tokenizer_json(model_path, fs::is_regular_file(cfg, ec) ? cfg.string() : "");
  }
  if (p.extension() == ".model") return load_sentencepiece(model_path);
  fail("{}: not a tokenizer (expected a model directory, a .gguf, tokenizer.json or a "
       "SentencePiece .model)", model_path);
}

}  // namespace atom
