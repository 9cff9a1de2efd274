// Literal matching of added / special tokens in raw text, before any pre-tokenization (as HF
// tokenizers' AddedVocabulary and llama.cpp's special-token partition do).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atom::tok {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;      // control token: only matched when parse_special is on
  bool lstrip = false;       // absorbs whitespace on its left
  bool rstrip = false;       // absorbs whitespace on its right
  bool single_word = false;  // only matched when not glued to word characters
};

// A piece of the input: either text to tokenize normally (id < 0) or one added token.
struct Segment {
  size_t begin = 0, end = 0;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Leftmost-longest split of `text`. Special tokens are skipped when parse_special is false;
  // non-special added tokens are always matched (HF and llama.cpp agree on that).
  std::vector<Segment> split(std::string_view text, bool parse_special) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // candidates, longest first
};

bool is_unicode_whitespace(uint32_t cp);

}  // namespace atom::tok
