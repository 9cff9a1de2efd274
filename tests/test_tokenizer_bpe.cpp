// Byte-level BPE and the HF pipeline pieces on small hand-built vocabularies.
#include <gtest/gtest.h>

#include <set>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/tokenizer/regex.h"
#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"
#include "gguf_test_writer.h"
#include "test_tokenizer_util.h"
#include "test_util.h"

namespace atom {
namespace {

using test::json;

std::unique_ptr<Tokenizer> from_json(const json& j, const json& cfg = nullptr) {
  return parse_tokenizer_json(j.dump(), cfg.is_null() ? "" : cfg.dump(), "test.json");
}

// ---------------------------------------------------------------- UTF-8 and byte alphabet

TEST(TokenizerUtf8, ValidityAndLossyReplacement) {
  EXPECT_TRUE(tok::is_valid_utf8("h\xC3\xA9llo \xF0\x9F\x91\x8D"));
  EXPECT_FALSE(tok::is_valid_utf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(tok::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(tok::is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  EXPECT_FALSE(tok::is_valid_utf8("\xE2\x82"));          // truncated
  // One U+FFFD per maximal invalid subpart (Rust from_utf8_lossy / WHATWG).
  EXPECT_EQ(tok::utf8_lossy("a\xE2\x82" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(tok::utf8_lossy("\xC0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xF0\x9F\x91"), "\xEF\xBF\xBD");
  EXPECT_EQ(tok::utf8_lossy("\xFF" "x"), "\xEF\xBF\xBD" "x");
}

TEST(TokenizerUtf8, IncompleteTail) {
  EXPECT_EQ(tok::utf8_incomplete_tail("abc"), 0u);
  EXPECT_EQ(tok::utf8_incomplete_tail("a\xE2\x82"), 2u);
  EXPECT_EQ(tok::utf8_incomplete_tail("a\xF0\x9F\x91"), 3u);
  EXPECT_EQ(tok::utf8_incomplete_tail("a\xF0\x9F\x91\x8D"), 0u);
  EXPECT_EQ(tok::utf8_incomplete_tail("a\xC0"), 0u);  // never valid: nothing to wait for
  EXPECT_EQ(tok::utf8_incomplete_tail("a\xE0\x80"), 0u);  // overlong prefix: invalid already
}

TEST(TokenizerByteLevel, AlphabetIsABijection) {
  const auto& m = tok::byte_to_unicode();
  std::set<std::string> seen(m.begin(), m.end());
  EXPECT_EQ(seen.size(), 256u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(tok::unicode_to_byte(tok::utf8_decode(m[b], 0)), b);
  EXPECT_EQ(m[' '], "\xC4\xA0");   // 'Ġ'
  EXPECT_EQ(m['\n'], "\xC4\x8A");  // 'Ċ'
  EXPECT_EQ(m['A'], "A");
}

// ---------------------------------------------------------------- regex

std::vector<std::string> matches(const tok::Regex& re, const std::string& s) {
  std::vector<std::string> out;
  for (auto [b, e] : re.find_all(s)) out.push_back(s.substr(b, e - b));
  return out;
}

TEST(TokenizerRegex, Gpt2PatternWithLookahead) {
  tok::Regex re(
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
  EXPECT_EQ(matches(re, "Hello   world's 123!!"),
            (std::vector<std::string>{"Hello", "  ", " world", "'s", " 123", "!!"}));
  EXPECT_EQ(matches(re, "end  \n"), (std::vector<std::string>{"end", "  \n"}));
}

TEST(TokenizerRegex, WhitespaceIsUnicodeWhiteSpaceLikeOniguruma) {
  tok::Regex ws("\\s");
  EXPECT_EQ(matches(ws, "a\xC2\x85" "b").size(), 1u);      // U+0085 is White_Space
  EXPECT_EQ(matches(ws, "a\xE1\xA0\x8E" "b").size(), 0u);  // U+180E is not (PCRE2 \h says yes)
  tok::Regex cls("[^\\s\\p{L}]+");
  EXPECT_EQ(matches(cls, "a\xE1\xA0\x8E" "b"), (std::vector<std::string>{"\xE1\xA0\x8E"}));
  EXPECT_THROW(tok::Regex("(unclosed"), Error);
}

// ---------------------------------------------------------------- BPE merges

TEST(TokenizerBpe, MatchesBruteForceOnRandomVocab) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 5; ++round) {
    // Alphabet of 6 letters; 60 random merges of existing tokens (unique pairs and results).
    test::MiniBpe b;
    for (char c : std::string("abcdef")) b.vocab.push_back(std::string(1, c));
    std::set<std::pair<std::string, std::string>> pairs;
    while (b.merges.size() < 60) {
      const std::string x = b.vocab[rng() % b.vocab.size()], y = b.vocab[rng() % b.vocab.size()];
      if (x.size() + y.size() > 8 || pairs.count({x, y}) || b.id(x + y) >= 0) continue;
      pairs.insert({x, y});
      b.merges.emplace_back(x, y);
      b.vocab.push_back(x + y);
    }
    json j = test::byte_level_json();
    j["model"] = b.model_json();
    j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"use_regex", false}};
    auto t = from_json(j);
    for (int w = 0; w < 300; ++w) {
      std::string word;
      const int len = 1 + int(rng() % 20);
      for (int i = 0; i < len; ++i) word += char('a' + rng() % 6);
      EXPECT_EQ(test::texts_of(*t, t->encode(word)), b.brute_force(word)) << word;
    }
  }
}

TEST(TokenizerBpe, MergesAsPairsAndMergePriority) {
  // "ab" ranks before "bc": "abc" -> ab + c, whatever the order of appearance.
  json j = test::byte_level_json({{"a", "b"}, {"b", "c"}, {"ab", "c"}});
  auto t = from_json(j);
  EXPECT_EQ(test::texts_of(*t, t->encode("abcbc")), (std::vector<std::string>{"abc", "bc"}));
  json pairs = j;
  pairs["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"b", "c"}),
                                          json::array({"ab", "c"})});
  EXPECT_EQ(from_json(pairs)->encode("abcbc"), t->encode("abcbc"));
}

TEST(TokenizerBpe, IgnoreMergesTakesWholeVocabHits) {
  // Merges would give "ab"+"cd"; the vocab also has "abcd" but no merge builds it.
  json j = test::byte_level_json({{"a", "b"}, {"c", "d"}});
  j["model"]["vocab"]["abcd"] = 300;
  auto plain = from_json(j);
  EXPECT_EQ(test::texts_of(*plain, plain->encode("abcd")), (std::vector<std::string>{"ab", "cd"}));
  j["model"]["ignore_merges"] = true;
  auto llama3 = from_json(j);
  EXPECT_EQ(test::texts_of(*llama3, llama3->encode("abcd")), (std::vector<std::string>{"abcd"}));
}

TEST(TokenizerBpe, ByteLevelRoundTripsArbitraryText) {
  auto t = from_json(test::byte_level_json({{"\xC4\xA0", "t"}, {"h", "e"}}));
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 50; ++i) {
    const std::string s = test::random_unicode(rng, 1 + rng() % 40);
    EXPECT_EQ(t->decode(t->encode(s)), s);
  }
  // Invalid UTF-8 input is encoded as U+FFFD rather than rejected or crashing.
  EXPECT_EQ(t->decode(t->encode("a\xFF" "b")), "a\xEF\xBF\xBD" "b");
}

// ---------------------------------------------------------------- pre-tokenizers

// Tokenizer whose every pre-tokenized piece (up to 6 chars of `alphabet`) is one token.
std::unique_ptr<Tokenizer> piece_revealer(const std::vector<std::string>& alphabet,
                                          const json& pre, const json& added = json::array()) {
  const test::MiniBpe b = test::all_strings_bpe(alphabet, 6);
  json j = {{"model", b.model_json()}, {"pre_tokenizer", pre}, {"added_tokens", added}};
  j["model"]["ignore_merges"] = true;  // a piece found in the vocab is emitted whole
  return from_json(j);
}

std::vector<std::string> pieces(const Tokenizer& t, const std::string& s, bool special = true) {
  return test::texts_of(t, t.encode(s, false, special));
}

TEST(TokenizerPre, SplitBehaviors) {
  using V = std::vector<std::string>;
  auto split = [](const char* behavior, bool invert = false) {
    return piece_revealer({"a", "b", "-"}, {{"type", "Split"},
                                            {"pattern", {{"String", "-"}}},
                                            {"behavior", behavior},
                                            {"invert", invert}});
  };
  const std::string s = "a-b--a";
  EXPECT_EQ(pieces(*split("Removed"), s), (V{"a", "b", "a"}));
  EXPECT_EQ(pieces(*split("Isolated"), s), (V{"a", "-", "b", "-", "-", "a"}));
  EXPECT_EQ(pieces(*split("MergedWithPrevious"), s), (V{"a-", "b-", "-", "a"}));
  EXPECT_EQ(pieces(*split("MergedWithNext"), s), (V{"a", "-b", "-", "-a"}));
  EXPECT_EQ(pieces(*split("Contiguous"), s), (V{"a", "-", "b", "--", "a"}));
  EXPECT_EQ(pieces(*split("Removed", true), s), (V{"-", "-", "-"}));
}

TEST(TokenizerPre, DigitsIndividualAndContiguous) {
  using V = std::vector<std::string>;
  auto ind = piece_revealer({"a", "1", "2"}, {{"type", "Digits"}, {"individual_digits", true}});
  auto con = piece_revealer({"a", "1", "2"}, {{"type", "Digits"}, {"individual_digits", false}});
  EXPECT_EQ(pieces(*ind, "a12a"), (V{"a", "1", "2", "a"}));
  EXPECT_EQ(pieces(*con, "a12a"), (V{"a", "12", "a"}));
}

TEST(TokenizerPre, SequenceDigitsThenByteLevelIsSmolLM2) {
  // Digits first: "x  12" keeps the two spaces together ("ĠĠ"), unlike the GPT-2 regex alone.
  using V = std::vector<std::string>;
  const std::string G = "\xC4\xA0";
  json pre = {{"type", "Sequence"},
              {"pretokenizers",
               {{{"type", "Digits"}, {"individual_digits", true}},
                {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}}}};
  auto t = piece_revealer({"x", "1", "2", G}, pre);
  EXPECT_EQ(pieces(*t, "x  12"), (V{"x", G + G, "1", "2"}));
  auto gpt2 = piece_revealer({"x", "1", "2", G}, {{"type", "ByteLevel"}});
  EXPECT_EQ(pieces(*gpt2, "x  12"), (V{"x", G, G + "12"}));
}

TEST(TokenizerPre, MetaspacePrependSchemes) {
  using V = std::vector<std::string>;
  const std::string U = "\xE2\x96\x81";
  auto make = [&](const char* scheme, bool split) {
    return piece_revealer({"a", U},
                          {{"type", "Metaspace"}, {"replacement", U}, {"prepend_scheme", scheme},
                           {"split", split}},
                          json::array({test::added_token(5000, "<s>")}));
  };
  EXPECT_EQ(pieces(*make("always", true), "a a"), (V{U + "a", U + "a"}));
  EXPECT_EQ(pieces(*make("always", false), "a a"), (V{U + "a" + U + "a"}));
  EXPECT_EQ(pieces(*make("never", true), "a a"), (V{"a", U + "a"}));
  // "first": only the segment at the very start of the input gets the prefix.
  EXPECT_EQ(pieces(*make("first", true), "a<s>a"), (V{U + "a", "<s>", "a"}));
  EXPECT_EQ(pieces(*make("always", true), "a<s>a"), (V{U + "a", "<s>", U + "a"}));
}

// ---------------------------------------------------------------- added tokens

TEST(TokenizerAdded, SpecialTokensAreMatchedLiterally) {
  auto t = from_json(test::byte_level_json({}, {"<|im_start|>", "<|im_end|>"}));
  const int32_t start = t->token_id("<|im_start|>"), end = t->token_id("<|im_end|>");
  ASSERT_GE(start, 256);
  const auto ids = t->encode("<|im_start|>hi<|im_end|>");
  EXPECT_EQ(ids, (std::vector<int32_t>{start, 'h', 'i', end}));
  EXPECT_TRUE(t->is_special(start));
  EXPECT_FALSE(t->is_special('h'));
  // parse_special = false: the same text is plain bytes.
  EXPECT_EQ(t->encode("<|im_end|>", false, false).size(), std::string("<|im_end|>").size());
  EXPECT_EQ(t->decode(ids), "hi");
  EXPECT_EQ(t->decode(ids, false), "<|im_start|>hi<|im_end|>");
}

TEST(TokenizerAdded, LstripRstripSingleWord) {
  json j = test::byte_level_json();
  json a = test::added_token(300, "<mask>");
  a["lstrip"] = true;
  a["rstrip"] = true;
  json w = test::added_token(301, "foo", false);
  w["single_word"] = true;
  j["added_tokens"] = {a, w};
  auto t = from_json(j);
  EXPECT_EQ(t->encode("x  <mask>  y"), (std::vector<int32_t>{'x', 300, 'y'}));
  EXPECT_EQ(t->encode("foo bar")[0], 301);
  EXPECT_EQ(t->encode("foobar")[0], 'f');  // glued to a word: not the added token
}

TEST(TokenizerAdded, ByteFallbackAndUnknown) {
  // SentencePiece-converted style: Metaspace, byte fallback, ▁ decoding.
  const std::string U = "\xE2\x96\x81";
  test::MiniBpe b;
  b.vocab = {"<unk>", U, "a", U + "a"};
  b.merges = {{U, "a"}};
  for (int i = 0; i < 256; ++i) b.vocab.push_back(fmt::format("<0x{:02X}>", i));
  json j = {{"model", b.model_json()},
            {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", U}, {"prepend_scheme", "first"}}},
            {"decoder", {{"type", "Sequence"},
                         {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", U}}}, {"content", " "}},
                                       {{"type", "ByteFallback"}},
                                       {{"type", "Fuse"}},
                                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
  j["model"]["unk_token"] = "<unk>";
  j["model"]["byte_fallback"] = true;
  auto t = from_json(j);
  const auto ids = t->encode("a é");
  EXPECT_EQ(test::texts_of(*t, ids),
            (std::vector<std::string>{U + "a", U, "<0xC3>", "<0xA9>"}));
  EXPECT_EQ(t->decode(ids), "a é");
  // Without byte fallback, unknown characters become <unk>, fused when fuse_unk is set.
  j["model"]["byte_fallback"] = false;
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(test::texts_of(*from_json(j), from_json(j)->encode("aéé")),
            (std::vector<std::string>{U + "a", "<unk>"}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(from_json(j)->encode("aéé").size(), 3u);
}

TEST(TokenizerJson, PostProcessorBosAndConfig) {
  json j = test::byte_level_json({}, {"<s>", "</s>"});
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  auto t = from_json(j);
  const int32_t bos = t->token_id("<s>");
  EXPECT_EQ(t->bos_id(), bos);
  EXPECT_TRUE(t->add_bos_default());
  EXPECT_EQ(t->encode("a", true), (std::vector<int32_t>{bos, 'a'}));
  EXPECT_EQ(t->encode("a", false), (std::vector<int32_t>{'a'}));
  EXPECT_EQ(t->eos_id(), t->token_id("</s>"));
  // tokenizer_config.json overrides.
  auto c = from_json(j, {{"add_bos_token", false}, {"eos_token", {{"content", "<s>"}}},
                         {"chat_template", "{{ x }}"}});
  EXPECT_FALSE(c->add_bos_default());
  EXPECT_EQ(c->eos_id(), bos);
  EXPECT_EQ(c->chat_template(), "{{ x }}");
  EXPECT_THROW(from_json(j, {{"bos_token", "<nope>"}}), Error);
}

// ---------------------------------------------------------------- GGUF "gpt2"

std::vector<uint8_t> gguf_gpt2(const std::string& pre, bool with_merges = true) {
  testing::GgufBuilder g;
  std::vector<std::string> tokens;
  for (int i = 0; i < 256; ++i) tokens.push_back(tok::byte_to_unicode()[i]);
  tokens.push_back("<|endoftext|>");
  tokens.push_back("ab");
  std::vector<int32_t> types(tokens.size(), 1);
  types[256] = 3;
  g.kv_str("tokenizer.ggml.model", "gpt2");
  g.kv_str("tokenizer.ggml.pre", pre);
  g.kv_str_array("tokenizer.ggml.tokens", tokens);
  g.kv_array<int32_t>("tokenizer.ggml.token_type", testing::GV_I32, types);
  if (with_merges) g.kv_str_array("tokenizer.ggml.merges", {"a b"});
  g.kv_u32("tokenizer.ggml.eos_token_id", 256);
  return g.build();
}

TEST(TokenizerGguf, Gpt2VocabWithPreTokenizers) {
  auto buf = gguf_gpt2("smollm");
  auto f = io::GgufFile::from_buffer(buf.data(), buf.size(), "t.gguf");
  auto t = load_tokenizer_gguf(*f);
  EXPECT_EQ(test::texts_of(*t, t->encode("ab<|endoftext|>")),
            (std::vector<std::string>{"ab", "<|endoftext|>"}));
  EXPECT_EQ(t->eos_id(), 256);
  EXPECT_EQ(t->stop_ids(), (std::vector<int32_t>{256}));
  EXPECT_TRUE(t->is_special(256));
  EXPECT_EQ(t->decode(t->encode("x  12 ab")), "x  12 ab");
}

TEST(TokenizerGguf, UnknownPreTokenizerIsNamed) {
  auto buf = gguf_gpt2("mystery-pre");
  auto f = io::GgufFile::from_buffer(buf.data(), buf.size(), "t.gguf");
  try {
    load_tokenizer_gguf(*f);
    FAIL() << "expected atom::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("mystery-pre"), std::string::npos) << e.what();
  }
  auto nm = gguf_gpt2("gpt2", false);
  auto f2 = io::GgufFile::from_buffer(nm.data(), nm.size(), "t.gguf");
  EXPECT_THROW(load_tokenizer_gguf(*f2), Error);
}

TEST(TokenizerLoad, BadPathsAreErrors) {
  EXPECT_THROW(load_tokenizer("/nonexistent/dir/for/atom"), Error);
  EXPECT_THROW(load_tokenizer(ATOM_SOURCE_DIR "/src"), Error);  // a directory, no tokenizer
  EXPECT_THROW(load_tokenizer(ATOM_SOURCE_DIR "/CMakeLists.txt"), Error);
}

}  // namespace
}  // namespace atom
