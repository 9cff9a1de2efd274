// The real SmolLM2 tokenizer (embedded in the GGUF, and the HF tokenizer.json built from it by
// tools/reference/make_hf_tokenizer.py when present). Exact agreement with the HF tokenizers
// library is checked by tools/reference/check_tokenizer.py; these tests check the invariants.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"
#include "test_tokenizer_util.h"
#include "test_util.h"

namespace atom {
namespace {

namespace fs = std::filesystem;

const std::string kGguf = ATOM_MODEL_DIR "/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kHfDir = ATOM_MODEL_DIR "/SmolLM2-135M-Instruct-hf";
const std::string kWikitext = ATOM_SHARED_DIR "/data/wikitext2-test.txt";

#define REQUIRE_SMOLLM()                                                                  \
  if (!fs::exists(kGguf))                                                                 \
  GTEST_SKIP() << "SmolLM2 GGUF not found at " << kGguf << " (scripts/setup.sh fetches it)"

const Tokenizer& smollm() {
  static std::unique_ptr<Tokenizer> t = load_tokenizer(kGguf);
  return *t;
}

// Whitespace runs, tabs/newlines, emoji (ZWJ), CJK, combining marks, RTL, code, numbers,
// inline special tokens, odd Unicode spaces.
const std::string kTorture =
    "  leading spaces and trailing spaces   \n"
    "whitespace   runs\t\ttabs \t mixed\n\n\nnewlines\r\nCRLF\r\n \n  \n"
    "numbers 1234567 3.14 -0.5 1,000,000 x  12 a   345 \xD9\xA1\xD9\xA2 \xC2\xBD \xE2\x85\xAB\n"
    "emoji \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD "
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
    "\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8\n"
    "CJK \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4\n"
    "accents caf\xC3\xA9 e\xCC\x81 A\xCC\x8A Arabic \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7\n"
    "code:\ndef f(x):\n    return x**2 + 1  # c\n\tif (a != b) { y[i] = 0; }\n"
    "don't I'll DON'T <|im_start|>user\nhi<|im_end|>\n<|endoftext|>x < |im_start|>\n"
    "odd a\xC2\xA0" "b c\xE3\x80\x80" "d e\xE2\x80\xA8" "f g\xC2\x85h i\xE1\xA0\x8Ej\n   ";

TEST(TokenizerSmolLM2, Metadata) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  EXPECT_EQ(t.vocab_size(), 49152);
  EXPECT_EQ(t.token_text(t.bos_id()), "<|im_start|>");
  EXPECT_EQ(t.token_text(t.eos_id()), "<|im_end|>");
  EXPECT_FALSE(t.add_bos_default());
  EXPECT_EQ(t.stop_ids(), (std::vector<int32_t>{t.eos_id(), t.token_id("<|endoftext|>")}));
  for (int i = 0; i <= 16; ++i) EXPECT_TRUE(t.is_special(i)) << i;
  EXPECT_FALSE(t.is_special(17));
  EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
}

TEST(TokenizerSmolLM2, RoundTripTortureAndRandomUnicode) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  for (bool special : {true, false}) {
    const auto ids = t.encode(kTorture, false, special);
    EXPECT_EQ(t.decode(ids, false), kTorture);
  }
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 300; ++i) {
    const std::string s = test::random_unicode(rng, 1 + rng() % 60, 0x3FFFF);
    ASSERT_EQ(t.decode(t.encode(s), false), s);
  }
}

TEST(TokenizerSmolLM2, BytesMissingFromTheVocabAreDroppedLikeHF) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  // SmolLM2 has no token for the byte F1 (nor 04, 06, 13, 14, 16, 1D, C0, C1, F2, F5..FF);
  // HF's BPE without an unk token drops such characters' unknown bytes silently.
  EXPECT_LT(t.token_id("\xC3\xB1"), 0);  // 'ñ' = byte F1 in the byte-level alphabet
  const auto ids = t.encode("\xF1\xA9\x80\xAF");  // U+6902F
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(t.decode(ids), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(TokenizerSmolLM2, SpecialTokensAndDigits) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  const auto ids = t.encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  for (int32_t id : t.encode("<|im_start|>user\nhi<|im_end|>", false, false)) EXPECT_GT(id, 16);
  EXPECT_EQ(t.decode(ids), "user\nhi");  // specials skipped by default
  // SmolLM2 splits digits before the byte-level regex: the two spaces stay one token.
  EXPECT_EQ(test::texts_of(t, t.encode("x  12")),
            (std::vector<std::string>{"x", "\xC4\xA0\xC4\xA0", "1", "2"}));
}

TEST(TokenizerSmolLM2, HfTokenizerJsonAgreesWithGguf) {
  REQUIRE_SMOLLM();
  if (!fs::exists(kHfDir + "/tokenizer.json"))
    GTEST_SKIP() << kHfDir << " not found (python3 tools/reference/make_hf_tokenizer.py)";
  auto hf = load_tokenizer(kHfDir);
  const Tokenizer& g = smollm();
  EXPECT_EQ(hf->encode(kTorture), g.encode(kTorture));
  EXPECT_EQ(hf->encode(kTorture, false, false), g.encode(kTorture, false, false));
  EXPECT_EQ(hf->bos_id(), g.bos_id());
  EXPECT_EQ(hf->eos_id(), g.eos_id());
  EXPECT_EQ(hf->stop_ids(), g.stop_ids());
  EXPECT_EQ(hf->chat_template(), g.chat_template());
}

TEST(TokenizerSmolLM2, WholeWikitextQuicklyAndLosslessly) {
  REQUIRE_SMOLLM();
  if (!fs::exists(kWikitext)) GTEST_SKIP() << kWikitext << " not found";
  std::ifstream f(kWikitext, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const auto t0 = std::chrono::steady_clock::now();
  const auto ids = smollm().encode(text, false, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RecordProperty("seconds", std::to_string(s));
  EXPECT_LT(s, 5.0);
  // The HF tokenizers reference gives 304978 tokens (tools/reference/check_tokenizer.py
  // recomputes this and compares every id).
  EXPECT_EQ(ids.size(), 304978u);
  EXPECT_EQ(smollm().decode(ids), text);
}

TEST(TokenizerSmolLM2, StreamDecoderHoldsPartialCharacters) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  const std::string text = "h\xC3\xA9llo \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xE6\x97\xA5\xE6\x9C\xAC "
                           "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9<|im_end|>";
  const auto ids = t.encode(text);
  StreamDecoder sd(t);
  std::string out;
  int held = 0;
  for (int32_t id : ids) {
    const std::string p = sd.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(p));
    held += p.empty();
    out += p;
  }
  out += sd.flush();
  EXPECT_EQ(out, t.decode(ids));
  EXPECT_EQ(out, text.substr(0, text.size() - std::string("<|im_end|>").size()));
  EXPECT_GT(held, 0);  // the emoji span several byte-level tokens
}

TEST(TokenizerSmolLM2, ChatTemplateInsertsTheDefaultSystemPrompt) {
  REQUIRE_SMOLLM();
  const Tokenizer& t = smollm();
  EXPECT_EQ(t.apply_chat_template({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
            "Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.apply_chat_template({{"system", "S"}, {"user", "Hi"}, {"assistant", "Yo"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nYo<|im_end|>\n");
}

}  // namespace
}  // namespace atom
