// PCRE2 (UTF + UCP, JIT when available) wrapper used by pre-tokenizers and normalizers.
// Patterns are written in the Oniguruma dialect used by HF tokenizers; translate_hf_pattern
// rewrites the few constructs whose meaning differs in PCRE2.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atom::tok {

// Rewrites \s and \S (outside and inside character classes) to Unicode White_Space, which is
// what Oniguruma uses; PCRE2's UCP \s also matches U+180E.
std::string translate_hf_pattern(std::string_view pattern);

class Regex {
 public:
  // Throws atom::Error naming the pattern and the PCRE2 message when it does not compile.
  explicit Regex(std::string_view pattern, bool translate = true);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All non-overlapping, non-empty matches in `subject` (valid UTF-8), as byte spans
  // [begin, end). Empty matches are skipped (the scan advances one character).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view subject) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string pattern_;
};

}  // namespace atom::tok
