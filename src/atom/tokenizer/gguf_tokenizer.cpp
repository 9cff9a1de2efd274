// Tokenizers embedded in GGUF metadata (tokenizer.ggml.*), following llama.cpp's reading of
// the keys:
//   model "gpt2":  byte-level BPE; tokenizer.ggml.pre picks the pre-tokenizer:
//                  default/gpt2 -> GPT-2 regex; smollm -> Digits(individual) + GPT-2 regex;
//                  llama-bpe/llama3/llama-v3 -> Llama-3 regex (and whole-word vocab hits
//                  skip merging, add_bos defaults to true); qwen2 -> Qwen2 regex.
//   model "llama": SentencePiece-style BPE by scores (see spm.h).
// Special tokens: token_type 3 (control) and 4 (user-defined).
#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/tokenizer/bpe.h"
#include "atom/tokenizer/spm.h"

namespace atom {

std::unique_ptr<Tokenizer> load_tokenizer_gguf(const io::GgufFile& gguf) {
  const std::string& src = gguf.path();
  if (!gguf.has("tokenizer.ggml.model")) fail("{}: no tokenizer (tokenizer.ggml.model) in GGUF", src);
  const std::string model = gguf.get_string("tokenizer.ggml.model");
  if (!gguf.has("tokenizer.ggml.tokens")) fail("{}: tokenizer.ggml.tokens is missing", src);
  const auto& tokens = gguf.get_string_array("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  if (n == 0) fail("{}: tokenizer.ggml.tokens is empty", src);
  std::vector<int32_t> types(n, tok::kNormal);
  if (gguf.has("tokenizer.ggml.token_type")) {
    const auto& t = gguf.get_int_array("tokenizer.ggml.token_type");
    if (t.size() != n)
      fail("{}: tokenizer.ggml.token_type has {} entries for {} tokens", src, t.size(), n);
    for (size_t i = 0; i < n; ++i) types[i] = static_cast<int32_t>(t[i]);
  }
  auto id_key = [&](const char* key) -> int32_t {
    const int64_t v = gguf.get_int_or(key, -1);
    if (v < -1 || v >= static_cast<int64_t>(n))
      fail("{}: {} = {} is outside the vocabulary ({} tokens)", src, key, v, n);
    return static_cast<int32_t>(v);
  };
  const int32_t bos = id_key("tokenizer.ggml.bos_token_id");
  const int32_t eos = id_key("tokenizer.ggml.eos_token_id");
  const int32_t unk = id_key("tokenizer.ggml.unknown_token_id");
  const int32_t eot = id_key("tokenizer.ggml.eot_token_id");
  const std::string chat_template = gguf.get_string_or("tokenizer.chat_template", "");

  if (model == "gpt2") {
    tok::BpeSpec spec;
    spec.source = src;
    spec.model.vocab = tokens;
    if (!gguf.has("tokenizer.ggml.merges")) fail("{}: tokenizer.ggml.merges is missing", src);
    const auto& merges = gguf.get_string_array("tokenizer.ggml.merges");
    spec.model.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      // As llama.cpp: split at the first space after the first character.
      const size_t sp = merges[i].find(' ', 1);
      if (sp == std::string::npos)
        fail("{}: tokenizer.ggml.merges[{}] '{}' is not of the form \"a b\"", src, i, merges[i]);
      spec.model.merges.emplace_back(merges[i].substr(0, sp), merges[i].substr(sp + 1));
    }
    const std::string pre = gguf.get_string_or("tokenizer.ggml.pre", "default");
    tok::PreTokenizerStep bytelevel;  // ByteLevel with the GPT-2 regex
    bool add_bos_default = false;
    auto split_step = [](const char* pattern) {
      tok::PreTokenizerStep s;
      s.kind = tok::PreTokenizerStep::Split;
      s.regex = std::make_shared<tok::Regex>(pattern);
      s.behavior = tok::SplitBehavior::Isolated;
      return s;
    };
    if (pre == "default" || pre == "gpt2") {
      spec.pre_tokenizers = {bytelevel};
    } else if (pre == "smollm") {
      spec.pre_tokenizers = {split_step("\\p{N}"), bytelevel};
    } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
      bytelevel.use_regex = false;
      spec.pre_tokenizers = {split_step(tok::kLlama3Pattern), bytelevel};
      spec.model.ignore_merges = true;
      add_bos_default = true;
    } else if (pre == "qwen2") {
      bytelevel.use_regex = false;
      spec.pre_tokenizers = {split_step(tok::kQwen2Pattern), bytelevel};
    } else {
      fail("{}: unsupported tokenizer.ggml.pre '{}' (supported: default, gpt2, smollm, "
           "llama-bpe, llama3, qwen2)", src, pre);
    }
    for (size_t i = 0; i < n; ++i)
      if (types[i] == tok::kControl || types[i] == tok::kUserDefined)
        spec.added.push_back({tokens[i], static_cast<int32_t>(i), /*special=*/true});
    spec.byte_level_decode = true;
    spec.bos_id = bos;
    spec.eos_id = eos;
    spec.add_bos = gguf.get_bool_or("tokenizer.ggml.add_bos_token", add_bos_default);
    spec.chat_template = chat_template;
    if (eot >= 0) spec.extra_stop_ids.push_back(eot);
    return tok::make_bpe_tokenizer(std::move(spec));
  }
  if (model == "llama") {
    tok::SpmSpec spec;
    spec.source = src;
    spec.pieces = tokens;
    spec.types = types;
    spec.scores.assign(n, 0.0f);
    if (gguf.has("tokenizer.ggml.scores")) {
      const auto& s = gguf.get_float_array("tokenizer.ggml.scores");
      if (s.size() != n) fail("{}: tokenizer.ggml.scores has {} entries for {} tokens", src, s.size(), n);
      for (size_t i = 0; i < n; ++i) spec.scores[i] = static_cast<float>(s[i]);
    }
    spec.add_space_prefix = gguf.get_bool_or("tokenizer.ggml.add_space_prefix", true);
    spec.bos_id = bos;
    spec.eos_id = eos;
    spec.unk_id = unk;
    spec.add_bos = gguf.get_bool_or("tokenizer.ggml.add_bos_token", true);
    spec.chat_template = chat_template;
    if (eot >= 0) spec.extra_stop_ids.push_back(eot);
    return tok::make_spm_tokenizer(std::move(spec));
  }
  fail("{}: unsupported tokenizer.ggml.model '{}' (supported: gpt2, llama)", src, model);
}

}  // namespace atom
