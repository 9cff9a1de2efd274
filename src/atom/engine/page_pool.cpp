#include "atom/engine/page_pool.h"

#include <algorithm>

#include "atom/core/error.h"

namespace atom::engine {

PagePool::PagePool(int64_t num_pages, int64_t page_size) : num_pages_(num_pages), page_size_(page_size) {
  ATOM_CHECK(num_pages > 0 && num_pages <= INT32_MAX, "KV pool: number of pages must be in [1, 2^31), got {}",
             num_pages);
  ATOM_CHECK(page_size > 0, "KV pool: page size must be positive, got {}", page_size);
  free_.resize(size_t(num_pages));
  // Lowest ids on top of the stack, so a fresh pool hands out 0, 1, 2, ...
  for (int64_t i = 0; i < num_pages; ++i) free_[size_t(i)] = int32_t(num_pages - 1 - i);
  allocated_.assign(size_t(num_pages), false);
}

bool PagePool::grow(BlockTable& table, int64_t n_tokens) {
  const int64_t need = pages_for(n_tokens) - int64_t(table.size());
  if (need <= 0) return true;
  if (need > num_free()) return false;
  for (int64_t i = 0; i < need; ++i) {
    const int32_t page = free_.back();
    free_.pop_back();
    allocated_[size_t(page)] = true;
    table.push_back(page);
  }
  peak_used_ = std::max(peak_used_, num_used());
  return true;
}

void PagePool::release(BlockTable& table) {
  for (int32_t page : table) {
    ATOM_CHECK(page >= 0 && page < num_pages_ && allocated_[size_t(page)],
               "KV pool: page {} released but not allocated", page);
    allocated_[size_t(page)] = false;
    free_.push_back(page);
  }
  table.clear();
}

}  // namespace atom::engine
