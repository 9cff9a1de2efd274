// tokenizer.model through libsentencepiece. Control pieces (<s>, </s>, ...) are not matched by
// sentencepiece itself, so with parse_special they are split out first and each text fragment
// is encoded separately (as llama.cpp and HF's legacy Llama tokenizer do).
#include <sentencepiece_processor.h>

#include "atom/core/error.h"
#include "atom/tokenizer/added_tokens.h"
#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/tokenizer_config.h"
#include "atom/tokenizer/utf8.h"

namespace atom {
namespace {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto st = sp_.Load(path);
    if (!st.ok()) fail("{}: cannot load SentencePiece model: {}", path, st.ToString());
    const int n = sp_.GetPieceSize();
    if (n <= 0) fail("{}: empty SentencePiece vocabulary", path);
    std::vector<tok::AddedToken> specials;
    bytes_.resize(n);
    for (int i = 0; i < n; ++i) {
      const std::string& p = sp_.IdToPiece(i);
      if (sp_.IsControl(i)) {
        if (!p.empty()) specials.push_back({p, i, true});
        bytes_[i] = p;
      } else if (sp_.IsByte(i) && p.size() == 6) {
        bytes_[i] = std::string(1, static_cast<char>(std::stoi(p.substr(3, 2), nullptr, 16)));
      } else if (sp_.IsUnknown(i)) {
        bytes_[i] = p;
      } else {
        std::string out;
        for (size_t k = 0; k < p.size();) {
          if (p.compare(k, 3, "\xE2\x96\x81") == 0) out += ' ', k += 3;
          else out += p[k++];
        }
        bytes_[i] = std::move(out);
      }
    }
    specials_ = tok::AddedTokenMatcher(std::move(specials));
    bos_id_ = sp_.bos_id();
    eos_id_ = sp_.eos_id();
    add_bos_ = bos_id_ >= 0;  // the Llama / SentencePiece convention
    // The dummy-prefix option lives in the model proto; detect it from its effect instead.
    std::vector<std::string> pieces;
    if (sp_.Encode("a", &pieces).ok() && !pieces.empty())
      strip_leading_space_ = pieces[0].rfind("\xE2\x96\x81", 0) == 0;
    init_stop_ids();
  }

  void configure(const tok::TokenizerConfig& cfg) {
    auto id_of = [&](const std::string& t) {
      const int32_t id = token_id(t);
      if (id < 0) fail("{}: tokenizer_config.json names token '{}' which is not in the vocab",
                       path_, t);
      return id;
    };
    if (!cfg.bos_token.empty()) bos_id_ = id_of(cfg.bos_token);
    if (!cfg.eos_token.empty()) eos_id_ = id_of(cfg.eos_token);
    if (cfg.add_bos_token >= 0) add_bos_ = cfg.add_bos_token && bos_id_ >= 0;
    chat_template_ = cfg.chat_template;
    init_stop_ids();
  }

  std::vector<int32_t> encode(std::string_view text, bool add_bos,
                              bool parse_special) const override {
    std::string owned;
    text = tok::valid_utf8_view(text, owned);
    std::vector<int32_t> ids;
    if (add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
    for (const tok::Segment& seg : specials_.split(text, parse_special)) {
      if (seg.id >= 0) {
        ids.push_back(seg.id);
        continue;
      }
      std::vector<int> part;
      const auto st = sp_.Encode(text.substr(seg.begin, seg.end - seg.begin), &part);
      if (!st.ok()) fail("{}: SentencePiece encode failed: {}", path_, st.ToString());
      ids.insert(ids.end(), part.begin(), part.end());
    }
    return ids;
  }
  std::string token_bytes(int32_t id) const override { return bytes_[check(id)]; }
  std::string token_text(int32_t id) const override { return sp_.IdToPiece(check(id)); }
  int32_t token_id(std::string_view text) const override {
    const int id = sp_.PieceToId(text);
    // PieceToId maps unknown strings to unk_id; only report a real match.
    return id == sp_.unk_id() && text != sp_.IdToPiece(id) ? -1 : id;
  }
  int32_t vocab_size() const override { return sp_.GetPieceSize(); }
  bool is_special(int32_t id) const override { return sp_.IsControl(check(id)); }

 private:
  int check(int32_t id) const {
    if (id < 0 || id >= vocab_size())
      fail("token id {} out of range (vocab size {})", id, vocab_size());
    return id;
  }
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<std::string> bytes_;
  tok::AddedTokenMatcher specials_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path) {
  return std::make_unique<SentencePieceTokenizer>(model_path);
}

namespace tok {
std::unique_ptr<Tokenizer> load_sentencepiece_with_config(const std::string& model_path,
                                                          const TokenizerConfig& cfg) {
  auto t = std::make_unique<SentencePieceTokenizer>(model_path);
  t->configure(cfg);
  return t;
}
}  // namespace tok

}  // namespace atom
