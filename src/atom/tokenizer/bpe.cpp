#include "atom/tokenizer/bpe.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <queue>
#include <unordered_set>

#include "atom/core/error.h"
#include "atom/tokenizer/utf8.h"

namespace atom::tok {
namespace {

struct Piece {
  std::string text;
  bool at_origin = false;  // starts at offset 0 of the original input (Metaspace "first")
};

// HF NormalizedString::split: `spans` are the pattern's matches in `s`; produces the
// sub-pieces the behavior keeps (non-empty ones only).
void split_piece(const Piece& p, const std::vector<std::pair<size_t, size_t>>& spans,
                 SplitBehavior behavior, bool invert, std::vector<Piece>& out) {
  const std::string& s = p.text;
  if (s.empty()) return;
  struct M { size_t b, e; bool match; };
  std::vector<M> ms;  // gaps and matches covering all of s
  size_t prev = 0;
  for (auto [b, e] : spans) {
    if (prev != b) ms.push_back({prev, b, false});
    ms.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) ms.push_back({prev, s.size(), false});
  if (invert)
    for (auto& m : ms) m.match = !m.match;

  std::vector<M> kept;  // (span, removed?)
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (auto& m : ms) kept.push_back({m.b, m.e, false});
      break;
    case SplitBehavior::Removed:
      kept = ms;
      break;
    case SplitBehavior::Contiguous: {
      bool prev_match = false;
      for (auto& m : ms) {
        if (m.match == prev_match && !kept.empty()) kept.back().e = m.e;
        else kept.push_back({m.b, m.e, false});
        prev_match = m.match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool prev_match = false;
      for (auto& m : ms) {
        if (m.match && !prev_match && !kept.empty()) kept.back().e = m.e;
        else kept.push_back({m.b, m.e, false});
        prev_match = m.match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_match = false;
      for (auto it = ms.rbegin(); it != ms.rend(); ++it) {
        if (it->match && !prev_match && !kept.empty()) kept.back().b = it->b;
        else kept.push_back({it->b, it->e, false});
        prev_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
    }
  }
  for (auto& k : kept) {
    if (k.match || k.e <= k.b) continue;  // in `kept`, match == "remove this span"
    out.push_back({s.substr(k.b, k.e - k.b), p.at_origin && k.b == 0});
  }
}

std::vector<std::pair<size_t, size_t>> find_literal(std::string_view s, std::string_view lit) {
  std::vector<std::pair<size_t, size_t>> out;
  if (lit.empty()) return out;
  for (size_t pos = s.find(lit); pos != std::string_view::npos; pos = s.find(lit, pos + lit.size()))
    out.emplace_back(pos, pos + lit.size());
  return out;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : find_literal(s, from)) {
    out.append(s.substr(prev, b - prev));
    out.append(to);
    prev = e;
  }
  out.append(s.substr(prev));
  return out;
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(BpeSpec spec);

  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override;
  std::string token_bytes(int32_t id) const override { return bytes_.at(check(id)); }
  std::string token_text(int32_t id) const override { return text_.at(check(id)); }
  int32_t token_id(std::string_view text) const override {
    auto it = token_to_id_.find(std::string(text));
    return it == token_to_id_.end() ? -1 : it->second;
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(text_.size()); }
  bool is_special(int32_t id) const override { return special_.at(check(id)); }

 private:
  size_t check(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      fail("token id {} out of range (vocab size {})", id, vocab_size());
    return static_cast<size_t>(id);
  }
  using Cache = std::unordered_map<std::string, std::vector<int32_t>>;
  std::string normalize(std::string s) const;
  std::vector<Piece> pre_tokenize(std::string s, bool at_origin) const;
  void tokenize_piece(const std::string& piece, Cache& cache, std::vector<int32_t>& out) const;
  std::vector<int32_t> merge_word(const std::string& w) const;
  int32_t lookup(const std::string& s) const {
    auto it = model_vocab_.find(s);
    return it == model_vocab_.end() ? -1 : it->second;
  }

  BpeSpec spec_;
  std::unique_ptr<Regex> bytelevel_regex_;
  AddedTokenMatcher added_;
  std::unordered_map<std::string, int32_t> model_vocab_;  // the BPE model's own vocab
  std::unordered_map<std::string, int32_t> token_to_id_;  // model vocab + added tokens
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) -> (rank, id)
  std::vector<std::string> text_, bytes_;
  std::vector<char> special_;
  std::array<int32_t, 256> byte_fallback_ids_{};  // ids of <0x00>..<0xFF>, -1 if absent
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

BpeTokenizer::BpeTokenizer(BpeSpec spec) : spec_(std::move(spec)) {
  const auto& m = spec_.model;
  size_t n = m.vocab.size();
  for (const auto& t : spec_.added) {
    if (t.id < 0) fail("{}: added token '{}' has negative id {}", spec_.source, t.content, t.id);
    n = std::max(n, static_cast<size_t>(t.id) + 1);
  }
  if (n == 0) fail("{}: empty vocabulary", spec_.source);
  if (n > (1u << 30)) fail("{}: vocabulary too large ({})", spec_.source, n);
  text_.assign(n, "");
  special_.assign(n, 0);
  for (size_t i = 0; i < m.vocab.size(); ++i) {
    text_[i] = m.vocab[i];
    if (!m.vocab[i].empty()) model_vocab_.emplace(m.vocab[i], static_cast<int32_t>(i));
  }
  token_to_id_ = model_vocab_;
  for (const auto& t : spec_.added) {
    text_[t.id] = t.content;
    token_to_id_[t.content] = t.id;
    if (t.special) special_[t.id] = 1;
  }
  for (size_t r = 0; r < m.merges.size(); ++r) {
    const auto& [a, b] = m.merges[r];
    const int32_t ia = lookup(a), ib = lookup(b), ic = lookup(a + b);
    if (ia < 0 || ib < 0)
      fail("{}: merge {} '{} {}' names a token that is not in the vocab", spec_.source, r, a, b);
    if (ic < 0)
      fail("{}: merge {} '{} {}' produces '{}' which is not in the vocab", spec_.source, r, a, b,
           a + b);
    merges_[pair_key(ia, ib)] = {static_cast<int32_t>(r), ic};  // later duplicates win, as in HF
  }
  for (const auto& p : spec_.pre_tokenizers)
    if (p.kind == PreTokenizerStep::ByteLevel && p.use_regex && !bytelevel_regex_)
      bytelevel_regex_ = std::make_unique<Regex>(kGpt2Pattern);
  added_ = AddedTokenMatcher(spec_.added);

  for (int b = 0; b < 256; ++b) byte_fallback_ids_[b] = lookup(fmt::format("<0x{:02X}>", b));

  // Decoded bytes of every token. ByteLevel: map each char back to its byte; a token with a
  // char outside the alphabet is passed through raw (as HF's ByteLevel decoder does).
  bytes_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& t = text_[i];
    std::string out;
    if (spec_.byte_level_decode) {
      bool ok = true;
      for (size_t k = 0; k < t.size() && ok;) {
        const int b = unicode_to_byte(utf8_decode(t, k));
        if (b < 0) ok = false;
        else out += static_cast<char>(b);
        k += utf8_char_len(static_cast<unsigned char>(t[k]));
      }
      if (!ok) out = t;
    } else if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
               std::isxdigit(static_cast<unsigned char>(t[3])) &&
               std::isxdigit(static_cast<unsigned char>(t[4]))) {
      out = static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
    } else {
      out = replace_all(t, "\xE2\x96\x81", " ");
    }
    bytes_[i] = std::move(out);
  }

  bos_id_ = spec_.bos_id;
  eos_id_ = spec_.eos_id;
  add_bos_ = spec_.add_bos && bos_id_ >= 0;
  strip_leading_space_ = spec_.strip_leading_space;
  chat_template_ = spec_.chat_template;
  if (bos_id_ >= static_cast<int32_t>(n) || eos_id_ >= static_cast<int32_t>(n))
    fail("{}: bos/eos id out of range ({}/{}, vocab {})", spec_.source, bos_id_, eos_id_, n);
  init_stop_ids(spec_.extra_stop_ids);
  // Only the flags of the model spec are needed from here on.
  spec_.model.vocab = {};
  spec_.model.merges = {};
  spec_.added = {};
}

std::string BpeTokenizer::normalize(std::string s) const {
  for (const auto& step : spec_.normalizers) {
    if (step.kind == NormalizerStep::Prepend) {
      if (!s.empty()) s = step.text + s;
    } else if (step.regex) {
      std::string out;
      size_t prev = 0;
      for (auto [b, e] : step.regex->find_all(s)) {
        out.append(s, prev, b - prev);
        out += step.content;
        prev = e;
      }
      out.append(s, prev, std::string::npos);
      s = std::move(out);
    } else {
      s = replace_all(s, step.text, step.content);
    }
  }
  return s;
}

std::vector<Piece> BpeTokenizer::pre_tokenize(std::string s, bool at_origin) const {
  std::vector<Piece> pieces{{std::move(s), at_origin}}, next;
  const auto& bmap = byte_to_unicode();
  for (const auto& step : spec_.pre_tokenizers) {
    next.clear();
    for (auto& p : pieces) {
      switch (step.kind) {
        case PreTokenizerStep::Split: {
          auto spans = step.regex ? step.regex->find_all(p.text) : find_literal(p.text, step.literal);
          split_piece(p, spans, step.behavior, step.invert, next);
          break;
        }
        case PreTokenizerStep::ByteLevel: {
          if (step.add_prefix_space && (p.text.empty() || p.text[0] != ' ')) {
            std::string t(1, ' ');
            p.text = std::move(t.append(p.text));
          }
          std::vector<Piece> parts;
          if (step.use_regex) split_piece(p, bytelevel_regex_->find_all(p.text),
                                          SplitBehavior::Isolated, false, parts);
          else if (!p.text.empty()) parts.push_back(p);
          for (auto& q : parts) {
            std::string mapped;
            mapped.reserve(q.text.size() * 2);
            for (unsigned char c : q.text) mapped += bmap[c];
            next.push_back({std::move(mapped), q.at_origin});
          }
          break;
        }
        case PreTokenizerStep::Metaspace: {
          Piece q{replace_all(p.text, " ", step.replacement), p.at_origin};
          const bool starts = q.text.compare(0, step.replacement.size(), step.replacement) == 0;
          if (!starts && (step.prepend == PreTokenizerStep::Always ||
                          (step.prepend == PreTokenizerStep::First && q.at_origin)))
            q.text.insert(0, step.replacement);
          if (step.split)
            split_piece(q, find_literal(q.text, step.replacement), SplitBehavior::MergedWithNext,
                        false, next);
          else if (!q.text.empty())
            next.push_back(std::move(q));
          break;
        }
      }
    }
    pieces.swap(next);
  }
  return pieces;
}

// HF BPE Word::merge_all: symbols in a linked list, candidate merges in a heap ordered by
// (rank, position); stale heap entries are detected and skipped.
std::vector<int32_t> BpeTokenizer::merge_word(const std::string& w) const {
  const auto& m = spec_.model;
  struct Sym { int32_t id, prev, next; bool alive; };
  std::vector<Sym> syms;
  syms.reserve(w.size());
  auto add = [&](int32_t id) {
    const int32_t i = static_cast<int32_t>(syms.size());
    syms.push_back({id, i - 1, -1, true});
    if (i > 0) syms[i - 1].next = i;
  };
  int32_t unk = -1;  // pending (possibly fused) unknown
  for (size_t i = 0; i < w.size();) {
    const size_t len = utf8_char_len(static_cast<unsigned char>(w[i]));
    std::string s = w.substr(i, len);
    const bool first = i == 0, last = i + len >= w.size();
    i += len;
    if (!first && !m.continuing_subword_prefix.empty()) s = m.continuing_subword_prefix + s;
    if (last && !m.end_of_word_suffix.empty()) s += m.end_of_word_suffix;
    const int32_t id = lookup(s);
    if (id >= 0) {
      if (unk >= 0) add(unk), unk = -1;
      add(id);
      continue;
    }
    if (m.byte_fallback) {
      bool all = true;
      for (unsigned char c : s) all = all && byte_fallback_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : s) add(byte_fallback_ids_[c]);
        continue;
      }
    }
    if (m.unk_id >= 0) {
      if (unk >= 0 && !m.fuse_unk) add(unk);
      unk = m.unk_id;
    }
    // Without an unk token HF drops the character silently.
  }
  if (unk >= 0) add(unk);

  struct Cand { int32_t rank, pos, new_id; };
  auto worse = [](const Cand& a, const Cand& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
  auto push = [&](int32_t pos) {
    const int32_t nx = syms[pos].next;
    if (nx < 0) return;
    auto it = merges_.find(pair_key(syms[pos].id, syms[nx].id));
    if (it != merges_.end()) heap.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) push(i);
  while (!heap.empty()) {
    const Cand top = heap.top();
    heap.pop();
    Sym& left = syms[top.pos];
    if (!left.alive || left.next < 0) continue;
    Sym& right = syms[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) syms[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  std::vector<int32_t> ids;
  for (const auto& s : syms)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

void BpeTokenizer::tokenize_piece(const std::string& piece, Cache& cache,
                                  std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  if (spec_.model.ignore_merges) {
    const int32_t id = lookup(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  auto it = cache.find(piece);
  if (it == cache.end()) it = cache.emplace(piece, merge_word(piece)).first;
  out.insert(out.end(), it->second.begin(), it->second.end());
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos,
                                          bool parse_special) const {
  // Regexes need valid UTF-8; invalid bytes become U+FFFD (HF can only see valid strings).
  std::string owned;
  text = valid_utf8_view(text, owned);
  std::vector<int32_t> ids;
  if (add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  Cache cache;  // per call: keeps encode() const and thread-safe
  for (const Segment& seg : added_.split(text, parse_special)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    std::string s = normalize(std::string(text.substr(seg.begin, seg.end - seg.begin)));
    for (const Piece& p : pre_tokenize(std::move(s), seg.begin == 0))
      tokenize_piece(p.text, cache, ids);
  }
  return ids;
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(BpeSpec spec) {
  return std::make_unique<BpeTokenizer>(std::move(spec));
}

}  // namespace atom::tok
