// libFuzzer target: parse_tokenizer_json on arbitrary bytes. Input layout:
//   tokenizer.json bytes [ '\0' text-to-encode [ '\0' tokenizer_config.json bytes ] ]
// A tokenizer that loads is then exercised: encode (with/without specials and BOS), decode,
// streaming decode, token_bytes/token_text of every id, chat template formatting.
// atom::Error is the only acceptable failure; anything else (crash, UB, other exception,
// invalid UTF-8 from the decoders) is a bug.
#include <spdlog/spdlog.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "atom/core/error.h"
#include "atom/tokenizer/tokenizer.h"
#include "atom/tokenizer/utf8.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t z1 = in.find('\0');
  const std::string_view json = in.substr(0, z1);
  std::string_view text = "Hello world 123 <s> <|im_start|>x\xC3\xA9\xF0\x9F\x91\x8D";
  std::string_view config;
  if (z1 != std::string_view::npos) {
    const size_t z2 = in.find('\0', z1 + 1);
    text = in.substr(z1 + 1, z2 == std::string_view::npos ? std::string_view::npos : z2 - z1 - 1);
    if (z2 != std::string_view::npos) config = in.substr(z2 + 1);
  }
  std::unique_ptr<atom::Tokenizer> tok;
  try {
    tok = atom::parse_tokenizer_json(std::string(json), std::string(config), "fuzz.json");
  } catch (const atom::Error&) {
    return 0;
  }
  try {
    for (int mode = 0; mode < 3; ++mode) {
      const auto ids = tok->encode(text, mode == 1, mode != 2);
      for (int32_t id : ids)
        if (id < 0 || id >= tok->vocab_size()) __builtin_trap();
      const std::string d = tok->decode(ids, mode == 0);
      if (!atom::tok::is_valid_utf8(d)) __builtin_trap();
      atom::StreamDecoder sd(*tok, mode == 0);
      std::string streamed;
      for (int32_t id : ids) streamed += sd.push(id);
      streamed += sd.flush();
      if (!atom::tok::is_valid_utf8(streamed)) __builtin_trap();
    }
    const int32_t n = std::min(tok->vocab_size(), 4096);
    volatile size_t sink = 0;
    for (int32_t id = 0; id < n; ++id)
      sink = sink + tok->token_bytes(id).size() + tok->token_text(id).size() + tok->is_special(id);
    (void)tok->apply_chat_template({{"system", "s"}, {"user", std::string(text)}}, true);
  } catch (const atom::Error&) {
    // e.g. a Llama-2 template rejecting the roles, or a regex that fails at match time
  }
  return 0;
}
