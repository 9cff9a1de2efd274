// Collective communication between tensor-parallel ranks. The engine only needs an all-reduce of a
// row-parallel linear's partial outputs (and a barrier). Two implementations:
//   ThreadGroup  — N ranks as threads of one process on the CPU backend (tests, the CPU reference);
//   NcclGroup    — one rank per GPU over NCCL (src/atom/backend/cuda/nccl_group.h).
#pragma once
#include <atomic>
#include <barrier>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace atom::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: data = Σ over ranks, summed in rank order (0, 1, ..., size−1) so every rank — and a
  // single device adding the same parts in that order — gets bit-identical results.
  virtual void all_reduce_sum(float* data, int64_t count) = 0;
  virtual void barrier() = 0;
};

// N ranks in one process; each rank's thread calls the collectives with its own Communicator.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size);
  int size() const { return size_; }
  Communicator& rank(int r) { return *ranks_[size_t(r)]; }
  // Runs fn(rank) on `size` threads and joins them; the first exception thrown is rethrown here.
  // A rank that throws leaves the group: the others fail at their next collective instead of hanging.
  void run(const std::function<void(int rank)>& fn);

 private:
  class Rank;
  friend class Rank;
  int size_;
  std::barrier<> barrier_;
  std::atomic<bool> failed_{false};  // a rank threw: the others stop at their next collective
  std::vector<float*> slots_;       // each rank's buffer during an all-reduce
  std::vector<int64_t> counts_;
  std::vector<std::unique_ptr<Communicator>> ranks_;
};

}  // namespace atom::dist
