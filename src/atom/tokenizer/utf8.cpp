#include "atom/tokenizer/utf8.h"

namespace atom::tok {

size_t utf8_valid_len(std::string_view s, size_t i) {
  const size_t n = s.size();
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  auto cont = [&](size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (i + 1 >= n) return 0;
    const unsigned char c1 = b(i + 1);
    // E0 needs A0..BF (no overlongs), ED needs 80..9F (no surrogates).
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (c1 < lo || c1 > hi) return 0;
    return cont(i + 2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (i + 1 >= n) return 0;
    const unsigned char c1 = b(i + 1);
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (c1 < lo || c1 > hi) return 0;
    return cont(i + 2) && cont(i + 3) ? 4 : 0;
  }
  return 0;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t l = utf8_valid_len(s, i);
    if (l == 0) return false;
    i += l;
  }
  return true;
}

// Length of the longest prefix of s[i..] that is a valid start of a UTF-8 sequence but is cut
// short (a "maximal subpart" in Unicode terms); at least 1 so callers always advance.
static size_t maximal_subpart(std::string_view s, size_t i) {
  const size_t n = s.size();
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t k = 1;
  for (; k <= need && i + k < n; ++k) {
    const unsigned char ck = static_cast<unsigned char>(s[i + k]);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (ck < l || ck > h) break;
  }
  return k;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t l = utf8_valid_len(s, i);
    if (l) {
      out.append(s.data() + i, l);
      i += l;
    } else {
      out += "\xEF\xBF\xBD";
      i += maximal_subpart(s, i);
    }
  }
  return out;
}

std::string_view valid_utf8_view(std::string_view s, std::string& storage) {
  if (is_valid_utf8(s)) return s;
  storage = utf8_lossy(s);
  return storage;
}

size_t utf8_incomplete_tail(std::string_view s) {
  // Look back at most 3 bytes for the start of a sequence that runs past the end.
  const size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const size_t i = n - back;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    if (c < 0xC2 || c > 0xF4) return 0;  // ASCII, or a byte that never starts a sequence
    // A lead byte: incomplete iff its maximal valid subpart reaches the end of s.
    return maximal_subpart(s, i) == back && utf8_valid_len(s, i) == 0 ? back : 0;
  }
  return 0;
}

void utf8_append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t utf8_decode(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t l = utf8_char_len(c);
  if (l == 1 || i + l > s.size()) return c;
  uint32_t cp = c & (0xFF >> (l + 1));
  for (size_t k = 1; k < l; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return cp;
}

namespace {
struct ByteTables {
  std::array<std::string, 256> fwd;
  std::array<int16_t, 512> inv;  // every mapped code point is < 512
  ByteTables() {
    inv.fill(-1);
    // Printable Latin-1 bytes map to themselves; the rest to 256, 257, ... in byte order.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++);
      utf8_append(fwd[b], cp);
      inv[cp] = static_cast<int16_t>(b);
    }
  }
};
const ByteTables& tables() {
  static const ByteTables t;
  return t;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return tables().fwd; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? tables().inv[cp] : -1; }

}  // namespace atom::tok
