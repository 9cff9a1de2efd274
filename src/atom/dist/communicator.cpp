#include "atom/dist/communicator.h"

#include <cstring>
#include <exception>
#include <mutex>
#include <thread>

#include "atom/core/error.h"

namespace atom::dist {

class ThreadGroup::Rank final : public Communicator {
 public:
  Rank(ThreadGroup& g, int r) : g_(g), r_(r) {}
  int rank() const override { return r_; }
  int size() const override { return g_.size_; }
  void barrier() override {
    g_.barrier_.arrive_and_wait();
    ATOM_CHECK(!g_.failed_.load(), "tensor parallel: another rank failed");
  }
  void all_reduce_sum(float* data, int64_t count) override {
    g_.slots_[size_t(r_)] = data;
    g_.counts_[size_t(r_)] = count;
    barrier();  // every rank's buffer is posted
    for (int q = 0; q < g_.size_; ++q)
      ATOM_CHECK(g_.counts_[size_t(q)] == count, "all_reduce: rank {} sent {} values, rank {} sent {}", q,
                 g_.counts_[size_t(q)], r_, count);
    sum_.assign(g_.slots_[0], g_.slots_[0] + count);
    for (int q = 1; q < g_.size_; ++q) {
      const float* src = g_.slots_[size_t(q)];
      for (int64_t i = 0; i < count; ++i) sum_[size_t(i)] += src[i];
    }
    barrier();  // nobody reads the buffers any more
    std::memcpy(data, sum_.data(), size_t(count) * sizeof(float));
  }

 private:
  ThreadGroup& g_;
  int r_;
  std::vector<float> sum_;
};

ThreadGroup::ThreadGroup(int size) : size_(size), barrier_(size), slots_(size_t(size)), counts_(size_t(size)) {
  ATOM_CHECK(size >= 1 && size <= 64, "thread group: size must be in 1..64, got {}", size);
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r));
}

void ThreadGroup::run(const std::function<void(int)>& fn) {
  std::exception_ptr first;
  std::mutex mu;
  // A dropped rank leaves the barrier for good, so a failed group cannot run again.
  ATOM_CHECK(!failed_.load(), "thread group: unusable after a rank failed; create a new one");
  std::vector<std::thread> threads;
  for (int r = 0; r < size_; ++r)
    threads.emplace_back([&, r] {
      try {
        fn(r);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (!first) first = std::current_exception();
        }
        failed_ = true;
        // Leave the group so ranks blocked in a collective are released (they then see a count mismatch
        // or finish); std::barrier::arrive_and_drop removes this thread from every later phase.
        barrier_.arrive_and_drop();
      }
    });
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace atom::dist
