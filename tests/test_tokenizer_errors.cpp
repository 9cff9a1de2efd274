// Malformed tokenizer.json / tokenizer_config.json: always atom::Error, never a crash.
#include <gtest/gtest.h>

#include "atom/core/error.h"
#include "atom/tokenizer/tokenizer.h"
#include "test_tokenizer_util.h"
#include "test_util.h"

namespace atom {
namespace {

using test::json;

// A small but complete tokenizer.json exercising most fields.
json small_valid() {
  json j = test::byte_level_json({{"a", "b"}, {"ab", "c"}}, {"<s>", "</s>"});
  j["normalizer"] = {{"type", "Sequence"},
                     {"normalizers", {{{"type", "NFC"}}, {{"type", "Replace"},
                                                          {"pattern", {{"Regex", "x+"}}},
                                                          {"content", "x"}}}}};
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}},
                                           {{"type", "ByteLevel"}, {"use_regex", true}}}}};
  j["post_processor"] = {{"type", "TemplateProcessing"},
                         {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                     {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}};
  // Keep the document small: only the bytes the merges need plus a few more.
  json vocab = json::object();
  int id = 0;
  for (const char* t : {"a", "b", "c", "x", "1", "\xC4\xA0", "ab", "abc"}) vocab[t] = id++;
  j["model"]["vocab"] = vocab;
  j["added_tokens"] = {test::added_token(8, "<s>"), test::added_token(9, "</s>")};
  return j;
}

void expect_error(const std::string& text, const std::string& cfg = "",
                  const std::string& must_mention = "") {
  try {
    auto t = parse_tokenizer_json(text, cfg, "bad.json");
    FAIL() << "accepted: " << text.substr(0, 200);
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.json"), std::string::npos) << msg;  // names the file
    if (!must_mention.empty()) EXPECT_NE(msg.find(must_mention), std::string::npos) << msg;
  }
}

TEST(TokenizerJsonErrors, SmallValidFileWorks) {
  auto t = parse_tokenizer_json(small_valid().dump(), "", "ok.json");
  EXPECT_EQ(t->encode("abc", true), (std::vector<int32_t>{8, 7}));
  EXPECT_EQ(t->encode("xxx1"), (std::vector<int32_t>{3, 4}));  // Replace x+ -> x, digit split
}

TEST(TokenizerJsonErrors, StructuralProblems) {
  expect_error("");
  expect_error("{not json");
  expect_error("[]");
  expect_error("{}", "", "model");
  json j = small_valid();
  j["model"]["merges"].push_back("a zz");
  expect_error(j.dump(), "", "not in the vocab");
  j = small_valid();
  j["model"]["merges"].push_back("c a");  // "ca" is not a token
  expect_error(j.dump(), "", "ca");
  j = small_valid();
  j["model"]["merges"].push_back("abc");  // no space
  expect_error(j.dump(), "", "merges[2]");
  j = small_valid();
  j["model"]["type"] = "WordPiece";
  expect_error(j.dump(), "", "WordPiece");
  j = small_valid();
  j["pre_tokenizer"] = {{"type", "Punctuation"}};
  expect_error(j.dump(), "", "Punctuation");
  j = small_valid();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(("}}}, {"behavior", "Isolated"}};
  expect_error(j.dump(), "", "regex");
  j = small_valid();
  j["model"]["vocab"]["huge"] = 2000000000;
  expect_error(j.dump(), "", "out of range");
  j = small_valid();
  j["model"]["vocab"]["neg"] = -1;
  expect_error(j.dump());
  j = small_valid();
  j["model"]["unk_token"] = "<nope>";
  expect_error(j.dump(), "", "unk_token");
  j = small_valid();
  j["model"]["dropout"] = 0.1;
  expect_error(j.dump(), "", "dropout");
}

TEST(TokenizerJsonErrors, WrongTypes) {
  const std::vector<std::pair<std::vector<std::string>, json>> cases = {
      {{"model"}, 3},
      {{"model", "vocab"}, json::array({1, 2})},
      {{"model", "vocab", "a"}, "zero"},
      {{"model", "vocab", "a"}, 1.5},
      {{"model", "merges"}, "a b"},
      {{"model", "merges", "0"}, 7},
      {{"model", "merges", "0"}, json::array({"a"})},
      {{"model", "byte_fallback"}, "yes"},
      {{"added_tokens"}, json::object()},
      {{"added_tokens", "0"}, "<s>"},
      {{"added_tokens", "0", "id"}, "8"},
      {{"added_tokens", "0", "content"}, nullptr},
      {{"added_tokens", "0", "special"}, 1},
      {{"pre_tokenizer"}, "ByteLevel"},
      {{"pre_tokenizer", "pretokenizers"}, json::object()},
      {{"pre_tokenizer", "pretokenizers", "0", "individual_digits"}, "true"},
      {{"normalizer", "normalizers", "1", "pattern"}, "x+"},
      {{"normalizer", "type"}, 5},
      {{"post_processor", "single"}, "$A"},
      {{"post_processor", "single", "0", "SpecialToken", "id"}, 8},
      {{"decoder"}, json::array()},
      {{"decoder", "type"}, "CTC"},
  };
  for (const auto& [path, value] : cases) {
    json j = small_valid();
    json* p = &j;
    for (const auto& k : path) {
      if (p->is_array()) p = &(*p)[std::stoul(k)];
      else p = &(*p)[k];
    }
    *p = value;
    SCOPED_TRACE(::testing::Message() << "path " << json(path).dump() << " = " << value.dump());
    expect_error(j.dump());
  }
}

TEST(TokenizerJsonErrors, BadConfig) {
  const std::string ok = small_valid().dump();
  expect_error(ok, "{oops", "tokenizer_config");
  expect_error(ok, "[1]");
  expect_error(ok, R"({"add_bos_token": "yes"})");
  expect_error(ok, R"({"bos_token": 5})");
  expect_error(ok, R"({"bos_token": {"text": "<s>"}})");
  expect_error(ok, R"({"eos_token": "<nope>"})", "<nope>");
  expect_error(ok, R"({"chat_template": 3})");
  expect_error(ok, R"({"chat_template": [{"name": "default"}]})");
}

TEST(TokenizerJsonErrors, EveryTruncationIsRejected) {
  const std::string full = small_valid().dump();
  ASSERT_NO_THROW(parse_tokenizer_json(full, "", "ok.json"));
  for (size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    EXPECT_THROW(parse_tokenizer_json(full.substr(0, n), "", "bad.json"), Error);
  }
}

TEST(TokenizerJsonErrors, RandomMutationsNeverCrash) {
  const std::string full = small_valid().dump();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const std::string alphabet = "{}[]\",:0123456789-ab \\ux";
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = full;
    const int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = rng() % s.size();
      switch (rng() % 3) {
        case 0: s[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: s.erase(pos, 1 + rng() % 8); break;
        default: s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
      }
    }
    try {
      auto t = parse_tokenizer_json(s, "", "mut.json");
      // Whatever was accepted must also encode and decode without crashing.
      auto ids = t->encode("abc 123 <s>x\xF0\x9F\x91\x8D", true);
      (void)t->decode(ids, false);
      ++accepted;
    } catch (const Error&) {
    }
  }
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace atom
