// Helpers shared by the tokenizer tests: small hand-built tokenizer.json documents and a
// brute-force BPE used as the expectation.
#pragma once
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"

namespace atom::test {

using nlohmann::json;

// Splits valid UTF-8 into characters.
inline std::vector<std::string> utf8_chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t l = tok::utf8_char_len(static_cast<unsigned char>(s[i]));
    out.push_back(s.substr(i, l));
    i += l;
  }
  return out;
}

// A BPE model in tokenizer.json form. `vocab` order gives the ids.
struct MiniBpe {
  std::vector<std::string> vocab;
  std::vector<std::pair<std::string, std::string>> merges;

  json model_json() const {
    json v = json::object();
    for (size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
    json m = json::array();
    for (const auto& [a, b] : merges) m.push_back(a + " " + b);
    return {{"type", "BPE"}, {"vocab", v}, {"merges", m}};
  }
  int id(const std::string& t) const {
    for (size_t i = 0; i < vocab.size(); ++i)
      if (vocab[i] == t) return static_cast<int>(i);
    return -1;
  }
  // The textbook definition: repeatedly merge the adjacent pair with the lowest merge rank
  // (leftmost on ties), one occurrence at a time.
  std::vector<std::string> brute_force(const std::string& word) const {
    std::vector<std::string> sym = utf8_chars(word);
    std::map<std::pair<std::string, std::string>, size_t> rank;
    for (size_t r = 0; r < merges.size(); ++r) rank.emplace(merges[r], r);  // first rank wins
    // HF keeps the last rank of a duplicated pair; tests only build unique pairs.
    for (;;) {
      size_t best = SIZE_MAX, at = 0;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        auto it = rank.find({sym[i], sym[i + 1]});
        if (it != rank.end() && it->second < best) best = it->second, at = i;
      }
      if (best == SIZE_MAX) return sym;
      sym[at] += sym[at + 1];
      sym.erase(sym.begin() + at + 1);
    }
  }
};

// Every string over `alphabet` up to `max_len` characters is a token, built left to right by
// merges, so each pre-tokenized piece becomes exactly one token: ids reveal the pieces.
inline MiniBpe all_strings_bpe(const std::vector<std::string>& alphabet, int max_len) {
  MiniBpe b;
  std::vector<std::string> level = alphabet;
  b.vocab = alphabet;
  for (int len = 2; len <= max_len; ++len) {
    std::vector<std::string> next;
    for (const auto& s : level)
      for (const auto& c : alphabet) {
        next.push_back(s + c);
        b.vocab.push_back(s + c);
        b.merges.emplace_back(s, c);
      }
    level = std::move(next);
  }
  return b;
}

inline json added_token(int id, const std::string& content, bool special = true) {
  return {{"id", id},         {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},  {"normalized", false}, {"special", special}};
}

// tokenizer.json for a byte-level vocabulary: the 256 byte characters (ids = byte values),
// then `extra` tokens and merges; `specials` become added tokens after them.
inline json byte_level_json(const std::vector<std::pair<std::string, std::string>>& merges = {},
                            const std::vector<std::string>& specials = {},
                            bool use_regex = true) {
  MiniBpe b;
  for (int i = 0; i < 256; ++i) b.vocab.push_back(tok::byte_to_unicode()[i]);
  for (const auto& [x, y] : merges) {
    b.vocab.push_back(x + y);
    b.merges.emplace_back(x, y);
  }
  json added = json::array();
  for (const auto& s : specials) added.push_back(added_token(int(b.vocab.size() + added.size()), s));
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer",
           {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", use_regex}}},
          {"post_processor", nullptr},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", b.model_json()}};
}

inline std::vector<std::string> texts_of(const Tokenizer& t, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(t.token_text(id));
  return out;
}

// Random valid UTF-8 mixing ASCII, whitespace, Latin-1, CJK, emoji and combining marks.
// max_cp limits the supplementary planes (SmolLM2's vocabulary has no token for the lead
// bytes F1/F2, so characters from U+40000 up cannot round-trip through it, in HF either).
inline std::string random_unicode(std::mt19937_64& rng, size_t n_chars,
                                  uint32_t max_cp = 0x10FFFF) {
  static const uint32_t ranges[][2] = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0xFF}, {0x300, 0x36F}, {0x400, 0x4FF}, {0x600, 0x6FF},
      {0x4E00, 0x4FFF}, {0xAC00, 0xAC80}, {0x1F300, 0x1F64F}, {0x2000, 0x206F}, {0x30, 0x39},
      {0x3000, 0x303F}, {0x1F1E6, 0x1F1FF}, {0x10000, 0x10FFFF}};
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    const auto& r = ranges[rng() % std::size(ranges)];
    uint32_t cp = r[0] + uint32_t(rng() % (std::min(r[1], max_cp) - r[0] + 1));
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    tok::utf8_append(s, cp);
  }
  return s;
}

}  // namespace atom::test
