// SentencePiece-style BPE over a scored vocabulary (GGUF tokenizer.ggml.model == "llama").
// Encoding follows sentencepiece's bpe_model.cc: spaces become "▁", the text gets a "▁"
// prefix (add_space_prefix), characters are merged greedily by the score of the merged piece
// (ties: leftmost), unused pieces are split back, and characters outside the vocabulary become
// <0xAB> byte tokens (byte fallback) or the unknown token. Control (3) and user-defined (4)
// tokens are matched literally in the text first; as in llama.cpp, the text after each of them
// gets its own space prefix.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "atom/tokenizer/tokenizer.h"

namespace atom::tok {

// GGUF / sentencepiece piece types.
enum SpmType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5,
                         kByte = 6 };

struct SpmSpec {
  std::vector<std::string> pieces;
  std::vector<float> scores;   // same length as pieces
  std::vector<int32_t> types;  // same length as pieces (SpmType values)
  bool add_space_prefix = true;
  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
  bool add_bos = true;
  std::string chat_template;
  std::vector<int32_t> extra_stop_ids;  // e.g. GGUF tokenizer.ggml.eot_token_id
  std::string source;
};

std::unique_ptr<Tokenizer> make_spm_tokenizer(SpmSpec spec);

}  // namespace atom::tok
