// Incremental text of a generation: detokenizes ids as they are sampled (UTF-8 never split)
// and applies stop strings. Text is released only once no stop string can still begin in it,
// so a streaming client never receives the start of a stop string that later matches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "atom/tokenizer/tokenizer.h"

namespace atom {

class StopStringStream {
 public:
  StopStringStream(const Tokenizer& tok, std::vector<std::string> stop_strings);
  // Adds one generated id; returns the text that became safe to release (may be empty).
  // After a stop string matched, stopped() is true and the text ends before it.
  std::string push(int32_t id);
  // Generation ended: returns the held-back tail. flush_decoder also releases bytes of an
  // unfinished UTF-8 character (as U+FFFD) — used when generation ran out of tokens.
  std::string finish(bool flush_decoder);
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // all text so far (cut at a stop string)

 private:
  StreamDecoder decoder_;
  std::vector<std::string> stops_;
  std::string text_;
  size_t released_ = 0;  // bytes of text_ already returned
  size_t longest_stop_ = 0;
  bool stopped_ = false;
};

}  // namespace atom
