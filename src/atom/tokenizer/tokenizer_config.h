// tokenizer_config.json fields Atom uses (shared by the tokenizer.json and tokenizer.model
// loaders). Internal to the tokenizer module.
#pragma once
#include <memory>
#include <string>

#include "atom/tokenizer/tokenizer.h"

namespace atom::tok {

struct TokenizerConfig {
  std::string bos_token, eos_token;  // "" when absent
  int add_bos_token = -1;            // -1 absent, else 0/1
  std::string chat_template;         // the "default" one when a list is given
};

// Throws atom::Error (naming `source`) on invalid JSON or wrongly typed fields.
TokenizerConfig parse_tokenizer_config(const std::string& text, const std::string& source);

std::string read_text_file(const std::string& path);

// libsentencepiece model + optional tokenizer_config.json overrides.
std::unique_ptr<Tokenizer> load_sentencepiece_with_config(const std::string& model_path,
                                                          const TokenizerConfig& cfg);

}  // namespace atom::tok
