#include "atom/tokenizer/added_tokens.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "atom/tokenizer/utf8.h"

namespace atom::tok {

bool is_unicode_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  for (uint32_t i = 0; i < tokens_.size(); ++i) {
    if (tokens_[i].content.empty()) continue;  // an empty token would match everywhere
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  }
  for (auto& v : by_first_byte_)
    std::stable_sort(v.begin(), v.end(), [&](uint32_t a, uint32_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
}

namespace {
// Word characters for single_word: ASCII alphanumerics, '_' and any non-ASCII character
// (a minimal approximation of Unicode alphanumerics).
bool is_word_byte(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// Start of the whitespace run that ends at `pos` (valid UTF-8 text).
size_t whitespace_run_start(std::string_view s, size_t lo, size_t pos) {
  while (pos > lo) {
    size_t p = pos - 1;
    while (p > lo && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    if (!is_unicode_whitespace(utf8_decode(s, p))) break;
    pos = p;
  }
  return pos;
}
size_t whitespace_run_end(std::string_view s, size_t pos) {
  while (pos < s.size() && is_unicode_whitespace(utf8_decode(s, pos)))
    pos += utf8_char_len(static_cast<unsigned char>(s[pos]));
  return pos;
}
}  // namespace

std::vector<Segment> AddedTokenMatcher::split(std::string_view text, bool parse_special) const {
  std::vector<Segment> out;
  size_t seg_start = 0;  // start of the pending text segment
  size_t i = 0;
  while (i < text.size()) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[i])];
    int hit = -1;
    for (uint32_t k : cands) {
      const AddedToken& t = tokens_[k];
      if (t.special && !parse_special) continue;
      const size_t n = t.content.size();
      if (n > text.size() - i || std::memcmp(text.data() + i, t.content.data(), n) != 0) continue;
      if (t.single_word) {
        const bool left_ok = i == 0 || !is_word_byte(static_cast<unsigned char>(text[i - 1]));
        const bool right_ok =
            i + n == text.size() || !is_word_byte(static_cast<unsigned char>(text[i + n]));
        if (!left_ok || !right_ok) continue;
      }
      hit = static_cast<int>(k);
      break;
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens_[hit];
    size_t b = i, e = i + t.content.size();
    if (t.lstrip) b = whitespace_run_start(text, seg_start, b);
    if (t.rstrip) e = whitespace_run_end(text, e);
    if (b > seg_start) out.push_back({seg_start, b, -1});
    out.push_back({b, e, t.id});
    seg_start = i = e;
  }
  if (seg_start < text.size()) out.push_back({seg_start, text.size(), -1});
  return out;
}

}  // namespace atom::tok
