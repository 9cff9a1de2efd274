// KV page accounting: a fixed pool of pages of `page_size` tokens, handed out from a free list.
// A sequence's block table lists its pages in position order (page i holds positions
// [i*page_size, (i+1)*page_size)).
#pragma once
#include <cstdint>
#include <vector>

namespace atom::engine {

using BlockTable = std::vector<int32_t>;

class PagePool {
 public:
  PagePool(int64_t num_pages, int64_t page_size);
  int64_t num_pages() const { return num_pages_; }
  int64_t page_size() const { return page_size_; }
  int64_t num_free() const { return int64_t(free_.size()); }
  int64_t num_used() const { return num_pages_ - num_free(); }
  int64_t peak_used() const { return peak_used_; }
  double usage() const { return num_pages_ ? double(num_used()) / double(num_pages_) : 0.0; }

  // Pages needed to hold `n_tokens` positions.
  int64_t pages_for(int64_t n_tokens) const { return (n_tokens + page_size_ - 1) / page_size_; }
  // Appends pages to `table` until it holds `n_tokens` positions. Returns false (and changes
  // nothing) when the pool has too few free pages.
  bool grow(BlockTable& table, int64_t n_tokens);
  // Returns every page of `table` to the pool and empties it. Throws on a page that is not
  // allocated (a double free would corrupt another sequence's KV).
  void release(BlockTable& table);

 private:
  int64_t num_pages_, page_size_, peak_used_ = 0;
  std::vector<int32_t> free_;     // stack: the most recently freed page is reused first
  std::vector<bool> allocated_;
};

}  // namespace atom::engine
