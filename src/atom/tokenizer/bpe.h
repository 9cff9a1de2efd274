// HF-compatible BPE tokenizer: normalizers, pre-tokenizers, the BPE model and decoding, built
// from a BpeSpec. tokenizer.json and GGUF "gpt2" vocabularies both load into this.
//
// Pipeline (as in HF tokenizers): added tokens are split out of the raw text first; each
// remaining segment is normalized, pre-tokenized into pieces, and each piece is run through
// the BPE merges independently.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "atom/tokenizer/added_tokens.h"
#include "atom/tokenizer/regex.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom::tok {

// The pre-tokenizer regexes of the model families we support.
inline constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kQwen2Pattern =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// HF SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct NormalizerStep {
  enum Kind { Prepend, Replace } kind = Prepend;
  std::string text;                 // Prepend: prefix; Replace: literal pattern (if no regex)
  std::string content;              // Replace: replacement
  std::shared_ptr<Regex> regex;     // Replace with a Regex pattern
};

struct PreTokenizerStep {
  enum Kind { ByteLevel, Split, Metaspace } kind = ByteLevel;
  // ByteLevel
  bool add_prefix_space = false;
  bool use_regex = true;
  // Split (Digits is a Split on \p{N}): by regex, or by a literal string when regex is null.
  std::shared_ptr<Regex> regex;
  std::string literal;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  // Metaspace
  std::string replacement = "\xE2\x96\x81";  // U+2581 "▁"
  enum Prepend { Never, First, Always } prepend = Always;
  bool split = true;
};

struct BpeModelSpec {
  std::vector<std::string> vocab;  // id -> token string ("" for unused ids)
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  int32_t unk_id = -1;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;  // a piece that is itself in the vocab is emitted whole (Llama-3)
  std::string continuing_subword_prefix, end_of_word_suffix;
};

struct BpeSpec {
  BpeModelSpec model;
  std::vector<AddedToken> added;  // ids may also be model ids
  std::vector<NormalizerStep> normalizers;
  std::vector<PreTokenizerStep> pre_tokenizers;
  // ByteLevel: token chars map back through the GPT-2 byte alphabet. Otherwise SentencePiece
  // style: "▁" -> space and <0xAB> -> byte.
  bool byte_level_decode = true;
  bool strip_leading_space = false;
  int32_t bos_id = -1, eos_id = -1;
  bool add_bos = false;
  std::string chat_template;
  std::vector<int32_t> extra_stop_ids;  // e.g. GGUF tokenizer.ggml.eot_token_id
  std::string source;  // for error messages
};

// Throws atom::Error when merges name unknown tokens or their result is not in the vocab.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec);

}  // namespace atom::tok
