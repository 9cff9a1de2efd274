#include "atom/model/text_stream.h"

#include <algorithm>

namespace atom {

StopStringStream::StopStringStream(const Tokenizer& tok, std::vector<std::string> stop_strings)
    : decoder_(tok), stops_(std::move(stop_strings)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
  for (const std::string& s : stops_) longest_stop_ = std::max(longest_stop_, s.size());
}

std::string StopStringStream::push(int32_t id) {
  if (stopped_) return {};
  const size_t old_size = text_.size();
  text_ += decoder_.push(id);
  // A match must end in the new text; earlier text was already checked.
  const size_t search_from = old_size >= longest_stop_ ? old_size - longest_stop_ + 1 : 0;
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, text_.find(s, search_from));
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
    return finish(false);
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t safe = text_.size();
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, text_.size()); k > 0; --k)
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        safe = std::min(safe, text_.size() - k);
        break;
      }
  if (safe <= released_) return {};
  std::string out = text_.substr(released_, safe - released_);
  released_ = safe;
  return out;
}

std::string StopStringStream::finish(bool flush_decoder) {
  if (flush_decoder && !stopped_) text_ += decoder_.flush();
  if (text_.size() <= released_) return {};
  std::string out = text_.substr(released_);
  released_ = text_.size();
  return out;
}

}  // namespace atom
