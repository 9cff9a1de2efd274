// SentencePiece: a tiny model is trained here with libsentencepiece's trainer on random text;
// then (a) Atom's libsentencepiece wrapper and (b) Atom's own GGUF-"llama" BPE algorithm, fed
// with the model's pieces/scores/types through a GGUF, must give libsentencepiece's ids on
// fresh random text.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/tokenizer/tokenizer.h"
#include "gguf_test_writer.h"
#include "test_tokenizer_util.h"
#include "test_util.h"

namespace atom {
namespace {

namespace fs = std::filesystem;

// Random "language": words from a syllable inventory with some non-ASCII letters.
std::string random_text(std::mt19937_64& rng, size_t n_words, bool exotic) {
  static const char* syll[] = {"ka", "to", "ri", "mun", "el", "sa", "qu", "é", "ün", "dra",
                               "日", "本", "xo", "ph", "a", "i", "th", "ng", "ße", "ø"};
  static const char* odd[] = {"ζ", "👍", "\t", "Ж", "ñ", "€", "\xE2\x80\x8B", "!", "?", "7"};
  std::string s;
  for (size_t w = 0; w < n_words; ++w) {
    if (w) s += (rng() % 17 == 0) ? "  " : " ";
    const int n = 1 + int(rng() % 4);
    for (int k = 0; k < n; ++k) s += syll[rng() % std::size(syll)];
    if (exotic && rng() % 9 == 0) s += odd[rng() % std::size(odd)];
  }
  return s;
}

struct TrainedModel {
  fs::path dir;
  std::string model_path;
};

TrainedModel train(const std::string& name, bool byte_fallback, uint64_t seed) {
  TrainedModel m;
  m.dir = fs::temp_directory_path() / fmt::format("atom_spm_{}_{}", name, seed);
  fs::create_directories(m.dir);
  std::mt19937_64 rng(seed);
  {
    std::ofstream f(m.dir / "train.txt");
    for (int i = 0; i < 3000; ++i) f << random_text(rng, 8 + rng() % 8, false) << "\n";
  }
  const std::string args = fmt::format(
      "--input={} --model_prefix={} --vocab_size=300 --model_type=bpe --character_coverage=1.0 "
      "--byte_fallback={} --normalization_rule_name=identity --remove_extra_whitespaces=false "
      "--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --num_threads=1 --minloglevel=2",
      (m.dir / "train.txt").string(), (m.dir / "m").string(), byte_fallback ? "true" : "false");
  const auto st = sentencepiece::SentencePieceTrainer::Train(args);
  EXPECT_TRUE(st.ok()) << st.ToString();
  m.model_path = (m.dir / "m.model").string();
  return m;
}

// The model's vocabulary as GGUF tokenizer metadata (what llama.cpp's converter writes).
std::vector<uint8_t> to_gguf(const sentencepiece::SentencePieceProcessor& sp) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int i = 0; i < sp.GetPieceSize(); ++i) {
    tokens.push_back(sp.IdToPiece(i));
    scores.push_back(sp.GetScore(i));
    types.push_back(sp.IsUnknown(i) ? 2 : sp.IsControl(i) ? 3 : sp.IsUnused(i) ? 5
                    : sp.IsByte(i)  ? 6 : 1);
  }
  testing::GgufBuilder g;
  g.kv_str("tokenizer.ggml.model", "llama");
  g.kv_str_array("tokenizer.ggml.tokens", tokens);
  g.kv_array<float>("tokenizer.ggml.scores", testing::GV_F32, scores);
  g.kv_array<int32_t>("tokenizer.ggml.token_type", testing::GV_I32, types);
  g.kv_u32("tokenizer.ggml.bos_token_id", uint32_t(sp.bos_id()));
  g.kv_u32("tokenizer.ggml.eos_token_id", uint32_t(sp.eos_id()));
  g.kv_u32("tokenizer.ggml.unknown_token_id", uint32_t(sp.unk_id()));
  return g.build();
}

class SpmTest : public ::testing::TestWithParam<bool> {};  // param: byte fallback

TEST_P(SpmTest, WrapperAndGgufLlamaMatchLibSentencePiece) {
  const bool byte_fallback = GetParam();
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " byte_fallback " << byte_fallback);
  const TrainedModel m = train(byte_fallback ? "bf" : "unk", byte_fallback, seed);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(m.model_path).ok());

  auto wrapper = load_sentencepiece(m.model_path);
  const auto buf = to_gguf(sp);
  auto gguf = io::GgufFile::from_buffer(buf.data(), buf.size(), "spm.gguf");
  auto ours = load_tokenizer_gguf(*gguf);
  EXPECT_EQ(ours->vocab_size(), sp.GetPieceSize());
  EXPECT_TRUE(ours->add_bos_default());
  EXPECT_EQ(ours->bos_id(), sp.bos_id());

  std::mt19937_64 rng(seed ^ 0x5eed);  // fresh text, not the training text
  int compared = 0;
  for (int i = 0; i < 300; ++i) {
    std::string text = random_text(rng, 1 + rng() % 30, /*exotic=*/true);
    if (i % 10 == 0) text = "  " + text + " ";  // leading / trailing spaces
    std::vector<int> ref;
    ASSERT_TRUE(sp.Encode(text, &ref).ok());
    const std::vector<int32_t> want(ref.begin(), ref.end());
    EXPECT_EQ(wrapper->encode(text, false, false), want) << text;
    EXPECT_EQ(ours->encode(text, false, false), want) << text;
    if (byte_fallback) {  // lossless: decoding gives the text back
      EXPECT_EQ(ours->decode(want), text);
      EXPECT_EQ(wrapper->decode(want), text);
    }
    ++compared;
  }
  EXPECT_EQ(compared, 300);
  // BOS, and control tokens written literally in the text (parse_special).
  EXPECT_EQ(ours->encode("ka", true).front(), sp.bos_id());
  const auto with_eos = ours->encode("ka</s>", false, true);
  EXPECT_EQ(with_eos.back(), sp.eos_id());
  EXPECT_EQ(wrapper->encode("ka</s>", false, true), with_eos);
  EXPECT_NE(ours->encode("ka</s>", false, false).back(), sp.eos_id());
  EXPECT_EQ(ours->decode(with_eos), "ka");  // special skipped, prefix space dropped
  EXPECT_EQ(ours->stop_ids(), (std::vector<int32_t>{sp.eos_id()}));
  fs::remove_all(m.dir);
}

INSTANTIATE_TEST_SUITE_P(ByteFallback, SpmTest, ::testing::Values(true, false));

TEST(TokenizerSpm, StreamDecoderReassemblesByteTokens) {
  const uint64_t seed = test::fresh_seed();
  const TrainedModel m = train("stream", true, seed);
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(m.model_path).ok());
  const auto buf = to_gguf(sp);
  auto gguf = io::GgufFile::from_buffer(buf.data(), buf.size(), "spm.gguf");
  auto t = load_tokenizer_gguf(*gguf);
  const std::string text = "ka 👍 Ж€ζ to";  // none of these symbols is in the vocabulary
  const auto ids = t->encode(text);
  StreamDecoder sd(*t);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = sd.push(id);
    EXPECT_TRUE(tok::is_valid_utf8(piece));
    out += piece;
  }
  out += sd.flush();
  EXPECT_EQ(out, text);
  fs::remove_all(m.dir);
}

TEST(TokenizerSpm, ModelDirectoryWithTokenizerConfig) {
  const uint64_t seed = test::fresh_seed();
  const TrainedModel m = train("dir", true, seed);
  const fs::path dir = m.dir / "model";
  fs::create_directories(dir);
  fs::copy_file(m.model_path, dir / "tokenizer.model");
  {
    std::ofstream f(dir / "tokenizer_config.json");
    f << R"({"add_bos_token": false, "eos_token": "</s>", "chat_template": "[INST]"})";
  }
  auto t = load_tokenizer(dir.string());
  EXPECT_FALSE(t->add_bos_default());
  EXPECT_EQ(t->token_text(t->eos_id()), "</s>");
  EXPECT_EQ(t->chat_template(), "[INST]");
  EXPECT_EQ(t->apply_chat_template({{"user", "ka"}}), "<s>[INST] ka [/INST]");
  EXPECT_EQ(t->decode(t->encode("to ka")), "to ka");
  fs::remove_all(m.dir);
}

TEST(TokenizerSpm, BadModelFileIsAnError) {
  EXPECT_THROW(load_sentencepiece("/nonexistent/tokenizer.model"), Error);
  EXPECT_THROW(load_sentencepiece(ATOM_SOURCE_DIR "/CMakeLists.txt"), Error);
}

}  // namespace
}  // namespace atom
