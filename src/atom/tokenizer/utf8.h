// UTF-8 helpers and the GPT-2 byte-level alphabet, shared by the tokenizer implementations.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace atom::tok {

// Length of the UTF-8 sequence starting at s[i] if it is a complete, valid (shortest form,
// no surrogates, <= U+10FFFF) sequence; 0 otherwise.
size_t utf8_valid_len(std::string_view s, size_t i);

// Length of the UTF-8 character starting at s[i] for text already known to be valid
// (1 for a stray byte so that loops always advance).
inline size_t utf8_char_len(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

bool is_valid_utf8(std::string_view s);

// Replaces invalid byte sequences with U+FFFD, one per maximal invalid subpart (the same rule
// as Rust's String::from_utf8_lossy, which HF decoders use).
std::string utf8_lossy(std::string_view s);

// `s` itself when it is valid UTF-8; otherwise utf8_lossy(s), stored in `storage` (the view
// points into it). Encoders run on this: their regexes and splitters need valid UTF-8.
std::string_view valid_utf8_view(std::string_view s, std::string& storage);

// Number of trailing bytes of `s` that form an incomplete (but so far valid) UTF-8 sequence:
// those must be held back while streaming. 0 if s ends on a character boundary.
size_t utf8_incomplete_tail(std::string_view s);

void utf8_append(std::string& out, uint32_t cp);
uint32_t utf8_decode(std::string_view s, size_t i);  // valid text only

// GPT-2 bytes_to_unicode(): each byte maps to one printable code point (as UTF-8).
const std::array<std::string, 256>& byte_to_unicode();
// Inverse mapping: code point -> byte, or -1 when the code point is not in the alphabet.
int unicode_to_byte(uint32_t cp);

}  // namespace atom::tok
