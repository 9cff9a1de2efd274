// Chat template families and streaming decoding on small hand-built tokenizers. The expected
// strings follow the templates' Jinja source; tools/reference/check_tokenizer.py compares the
// same families against transformers' own rendering.
#include <gtest/gtest.h>

#include "atom/core/error.h"
#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"
#include "test_tokenizer_util.h"

namespace atom {
namespace {

using test::json;

std::unique_ptr<Tokenizer> with_template(const std::string& tmpl, const std::string& bos = "",
                                         const std::string& eos = "") {
  json j = test::byte_level_json({}, {"<s>", "</s>", "<|begin_of_text|>", "<|eot_id|>",
                                      "<|im_start|>", "<|im_end|>", "<|endoftext|>"});
  json cfg = {{"chat_template", tmpl}};
  if (!bos.empty()) cfg["bos_token"] = bos;
  if (!eos.empty()) cfg["eos_token"] = eos;
  return parse_tokenizer_json(j.dump(), cfg.dump(), "chat.json");
}

const std::vector<ChatMessage> kConv = {
    {"system", "Be brief."}, {"user", "  Hi there \n"}, {"assistant", "Hello."}, {"user", "2+2?"}};

TEST(TokenizerChat, ChatMLWithoutTemplateOrDefaultSystem) {
  auto t = with_template("");
  EXPECT_EQ(t->apply_chat_template({{"user", "Hi"}}),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  auto q = with_template("{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + "
                         "m['content'] + '<|im_end|>\\n'}}{% endfor %}");
  EXPECT_EQ(q->apply_chat_template(kConv, false),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n  Hi there \n<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n");
}

TEST(TokenizerChat, ChatMLDefaultSystemWithEscapedNewline) {
  // The default system text may be written with a Jinja "\n" escape instead of a newline.
  auto t = with_template("{% if loop.first and messages[0]['role'] != 'system' %}"
                         "{{ '<|im_start|>system\\nYou are Qwen, a model.<|im_end|>\\n' }}"
                         "{% endif %}<|im_start|>");
  EXPECT_EQ(t->apply_chat_template({{"user", "Hi"}}, false),
            "<|im_start|>system\nYou are Qwen, a model.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
  EXPECT_EQ(t->apply_chat_template({{"system", "X"}}, false), "<|im_start|>system\nX<|im_end|>\n");
}

TEST(TokenizerChat, Llama3) {
  auto t = with_template("{{ '<|start_header_id|>' }}", "<|begin_of_text|>", "<|eot_id|>");
  EXPECT_EQ(t->apply_chat_template(kConv),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(t->stop_ids(), (std::vector<int32_t>{t->token_id("<|eot_id|>"), t->token_id("<|im_end|>"),
                                                 t->token_id("</s>"), t->token_id("<|endoftext|>")}));
}

TEST(TokenizerChat, Llama2) {
  auto t = with_template("{{ bos_token + '[INST] ' }}", "<s>", "</s>");
  EXPECT_EQ(t->apply_chat_template(kConv),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n  Hi there [/INST] Hello. </s>"
            "<s>[INST] 2+2? [/INST]");
  EXPECT_EQ(t->apply_chat_template({{"user", " a "}}), "<s>[INST] a [/INST]");
  EXPECT_THROW(t->apply_chat_template({{"assistant", "x"}}), Error);
  EXPECT_THROW(t->apply_chat_template({{"user", "x"}, {"user", "y"}}), Error);
}

TEST(TokenizerChat, TemplatePromptEncodesSpecialsAsSingleTokens) {
  auto t = with_template("");
  const auto ids = t->encode(t->apply_chat_template({{"user", "Hi"}}));
  EXPECT_EQ(ids.front(), t->token_id("<|im_start|>"));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), t->token_id("<|im_end|>")), 1);
}

// ---------------------------------------------------------------- streaming

TEST(TokenizerStream, MultiByteCharactersSplitAcrossTokens) {
  auto t = with_template("");  // every byte is its own token
  const std::string text = "a\xC3\xA9\xF0\x9F\x91\x8D\xE6\x97\xA5";  // a é 👍 日
  StreamDecoder sd(*t);
  std::vector<std::string> outs;
  for (unsigned char c : text) outs.push_back(sd.push(c));
  EXPECT_EQ(outs, (std::vector<std::string>{"a", "", "\xC3\xA9", "", "", "", "\xF0\x9F\x91\x8D",
                                            "", "", "\xE6\x97\xA5"}));
  EXPECT_EQ(sd.flush(), "");
}

TEST(TokenizerStream, InvalidBytesBecomeReplacementCharacters) {
  auto t = with_template("");
  StreamDecoder sd(*t);
  EXPECT_EQ(sd.push(0xE6), "");
  EXPECT_EQ(sd.push(0x97), "");
  EXPECT_EQ(sd.push('x'), "\xEF\xBF\xBDx");  // the cut sequence can never complete
  EXPECT_EQ(sd.push(0xFF), "\xEF\xBF\xBD");  // never valid: emitted at once
  EXPECT_EQ(sd.push(0xF0), "");
  EXPECT_EQ(sd.flush(), "\xEF\xBF\xBD");     // end of stream: incomplete tail replaced
  EXPECT_EQ(sd.flush(), "");
}

TEST(TokenizerStream, SpecialTokensSkippedOrShown) {
  auto t = with_template("");
  const int32_t end = t->token_id("<|im_end|>");
  StreamDecoder skip(*t), show(*t, false);
  EXPECT_EQ(skip.push(end), "");
  EXPECT_EQ(show.push(end), "<|im_end|>");
  EXPECT_THROW(t->token_bytes(1 << 20), Error);
  EXPECT_THROW(t->decode({-1}), Error);
}

}  // namespace
}  // namespace atom
