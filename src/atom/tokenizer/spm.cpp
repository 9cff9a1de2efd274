#include "atom/tokenizer/spm.h"

#include <array>
#include <cctype>
#include <functional>
#include <queue>
#include <unordered_map>

#include "atom/core/error.h"
#include "atom/tokenizer/added_tokens.h"
#include "atom/tokenizer/utf8.h"

namespace atom::tok {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // "▁"

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(SpmSpec spec);
  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override;
  std::string token_bytes(int32_t id) const override { return bytes_[check(id)]; }
  std::string token_text(int32_t id) const override { return spec_.pieces[check(id)]; }
  int32_t token_id(std::string_view text) const override {
    auto it = all_.find(std::string(text));
    return it == all_.end() ? -1 : it->second;
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(spec_.pieces.size()); }
  bool is_special(int32_t id) const override {
    const int32_t t = spec_.types[check(id)];
    return t == kControl || t == kUserDefined;
  }

 private:
  size_t check(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      fail("token id {} out of range (vocab size {})", id, vocab_size());
    return static_cast<size_t>(id);
  }
  void encode_fragment(std::string_view text, bool prefix, std::vector<int32_t>& out) const;

  SpmSpec spec_;
  // Pieces that take part in merges: normal, user-defined and unused (sentencepiece's pieces_).
  std::unordered_map<std::string, int32_t> mergeable_;
  std::unordered_map<std::string, int32_t> all_;
  std::vector<std::string> bytes_;
  std::array<int32_t, 256> byte_ids_{};
  bool byte_fallback_ = true;
  AddedTokenMatcher specials_;
};

SpmTokenizer::SpmTokenizer(SpmSpec spec) : spec_(std::move(spec)) {
  const size_t n = spec_.pieces.size();
  if (n == 0) fail("{}: empty vocabulary", spec_.source);
  if (spec_.scores.size() != n || spec_.types.size() != n)
    fail("{}: {} tokens but {} scores and {} token types", spec_.source, n, spec_.scores.size(),
         spec_.types.size());
  byte_ids_.fill(-1);
  bytes_.resize(n);
  std::vector<AddedToken> specials;
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = spec_.pieces[i];
    const int32_t t = spec_.types[i], id = static_cast<int32_t>(i);
    all_.emplace(p, id);  // first occurrence wins for lookups
    if (t == kNormal || t == kUserDefined || t == kUnused) mergeable_.emplace(p, id);
    if (t == kControl || t == kUserDefined) {
      specials.push_back({p, id, /*special=*/true});
      bytes_[i] = p;
    } else if (t == kByte) {
      if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>' ||
          !std::isxdigit(static_cast<unsigned char>(p[3])) ||
          !std::isxdigit(static_cast<unsigned char>(p[4])))
        fail("{}: byte token {} has text '{}', expected <0xAB>", spec_.source, i, p);
      const int b = std::stoi(p.substr(3, 2), nullptr, 16);
      byte_ids_[b] = id;
      bytes_[i] = std::string(1, static_cast<char>(b));
    } else if (t == kUnknown) {
      bytes_[i] = p;
    } else {
      std::string out;  // "▁" -> " "
      for (size_t k = 0; k < p.size();) {
        if (p.compare(k, kSpace.size(), kSpace) == 0) out += ' ', k += kSpace.size();
        else out += p[k++];
      }
      bytes_[i] = std::move(out);
    }
  }
  for (int32_t id : byte_ids_) byte_fallback_ = byte_fallback_ && id >= 0;
  specials_ = AddedTokenMatcher(std::move(specials));
  auto in_range = [&](int32_t id) { return id >= -1 && id < static_cast<int32_t>(n); };
  if (!in_range(spec_.bos_id) || !in_range(spec_.eos_id) || !in_range(spec_.unk_id))
    fail("{}: bos/eos/unk id out of range ({}/{}/{}, vocab {})", spec_.source, spec_.bos_id,
         spec_.eos_id, spec_.unk_id, n);
  if (spec_.unk_id < 0)
    for (size_t i = 0; i < n && spec_.unk_id < 0; ++i)
      if (spec_.types[i] == kUnknown) spec_.unk_id = static_cast<int32_t>(i);
  bos_id_ = spec_.bos_id;
  eos_id_ = spec_.eos_id;
  add_bos_ = spec_.add_bos && bos_id_ >= 0;
  strip_leading_space_ = spec_.add_space_prefix;
  chat_template_ = spec_.chat_template;
  init_stop_ids(spec_.extra_stop_ids);
}

void SpmTokenizer::encode_fragment(std::string_view text, bool prefix,
                                   std::vector<int32_t>& out) const {
  // Symbols: one per UTF-8 character, in a doubly linked list; `len == 0` marks merged-away.
  struct Sym { size_t begin, len; int32_t prev, next; };
  std::string s;
  s.reserve(text.size() + 8);
  if (prefix && spec_.add_space_prefix) s += kSpace;
  for (char c : text) {
    if (c == ' ') s += kSpace;
    else s += c;
  }
  std::vector<Sym> syms;
  for (size_t i = 0; i < s.size();) {
    const size_t l = std::min(utf8_char_len(static_cast<unsigned char>(s[i])), s.size() - i);
    const int32_t k = static_cast<int32_t>(syms.size());
    syms.push_back({i, l, k - 1, -1});
    if (k > 0) syms[k - 1].next = k;
    i += l;
  }
  struct Pair { float score; int32_t left, right; size_t size; };
  auto worse = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  // Unused pieces may be formed but are split back into what they were merged from.
  std::unordered_map<std::string, std::pair<std::string, std::string>> rev_merge;
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const std::string piece = s.substr(syms[l].begin, syms[l].len + syms[r].len);
    auto it = mergeable_.find(piece);
    if (it == mergeable_.end()) return;
    agenda.push({spec_.scores[it->second], l, r, piece.size()});
    if (spec_.types[it->second] == kUnused)
      rev_merge[piece] = {s.substr(syms[l].begin, syms[l].len), s.substr(syms[r].begin, syms[r].len)};
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_pair(i - 1, i);
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Sym& l = syms[top.left];
    Sym& r = syms[top.right];
    // Stale: one side was merged away or has grown since this pair was queued.
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size || l.next != top.right) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = top.left;
    try_pair(l.prev, top.left);
    try_pair(top.left, l.next);
  }

  bool last_unk = false;  // consecutive unknowns fuse into one <unk> (no byte fallback)
  std::function<void(const std::string&)> emit = [&](const std::string& w) {
    auto it = mergeable_.find(w);
    if (it != mergeable_.end()) {
      if (spec_.types[it->second] == kUnused) {
        auto rm = rev_merge.find(w);
        if (rm != rev_merge.end()) {
          const auto parts = rm->second;  // copy: emit may rehash nothing, but be safe
          emit(parts.first);
          emit(parts.second);
          return;
        }
      }
      out.push_back(it->second);
      last_unk = false;
      return;
    }
    if (byte_fallback_) {
      for (unsigned char c : w) out.push_back(byte_ids_[c]);
      last_unk = false;
      return;
    }
    if (spec_.unk_id < 0) fail("{}: text has characters outside the vocabulary and no <unk>",
                               spec_.source);
    if (!last_unk) out.push_back(spec_.unk_id);
    last_unk = true;
  };
  for (int32_t i = 0; i >= 0 && i < static_cast<int32_t>(syms.size()); i = syms[i].next)
    emit(s.substr(syms[i].begin, syms[i].len));
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos,
                                          bool parse_special) const {
  std::string owned;
  text = valid_utf8_view(text, owned);
  std::vector<int32_t> ids;
  if (add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  // As llama.cpp: the first fragment, and each one after a special token, gets the prefix.
  bool prev_special = true;
  for (const Segment& seg : specials_.split(text, parse_special)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      prev_special = true;
      continue;
    }
    encode_fragment(text.substr(seg.begin, seg.end - seg.begin), prev_special, ids);
    prev_special = false;
  }
  return ids;
}

}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmSpec spec) {
  return std::make_unique<SpmTokenizer>(std::move(spec));
}

}  // namespace atom::tok
