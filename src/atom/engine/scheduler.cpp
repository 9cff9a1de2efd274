#include "atom/engine/scheduler.h"

#include <algorithm>

#include "atom/core/error.h"

namespace atom::engine {

void SchedulerConfig::validate() const {
  ATOM_CHECK(max_num_seqs >= 1, "max_num_seqs must be >= 1, got {}", max_num_seqs);
  // Every running sequence must be able to decode in every iteration, or the newest would starve.
  ATOM_CHECK(max_num_batched_tokens >= max_num_seqs,
             "max_num_batched_tokens ({}) must be >= max_num_seqs ({}): each running sequence decodes a token "
             "per iteration",
             max_num_batched_tokens, max_num_seqs);
}

Scheduler::Scheduler(const SchedulerConfig& cfg, PagePool& pool) : cfg_(cfg), pool_(pool) { cfg_.validate(); }

void Scheduler::add(Sequence* seq) {
  ATOM_CHECK(seq && !seq->tokens.empty(), "scheduler: a sequence needs at least one token");
  seq->arrival = next_arrival_++;
  seq->state = Sequence::State::Waiting;
  waiting_.push_back(seq);
}

void Scheduler::insert_running(Sequence* seq) {
  auto at = std::upper_bound(running_.begin(), running_.end(), seq,
                             [](const Sequence* a, const Sequence* b) { return a->arrival < b->arrival; });
  running_.insert(at, seq);
  seq->state = Sequence::State::Running;
}

void Scheduler::preempt(Sequence* victim, SchedulerStep& step, int64_t& budget) {
  auto chunk = std::find_if(step.chunks.begin(), step.chunks.end(),
                            [&](const ScheduledChunk& c) { return c.seq == victim; });
  if (chunk != step.chunks.end()) {
    budget += chunk->n_tokens;
    step.num_tokens -= chunk->n_tokens;
    step.chunks.erase(chunk);
  }
  pool_.release(victim->block_table);
  victim->num_computed = 0;
  victim->state = Sequence::State::Waiting;
  ++victim->num_preemptions;
  ++num_preemptions_;
  std::erase(running_, victim);
  // Evictions run newest first, so pushing each to the front keeps the queue in arrival order.
  waiting_.push_front(victim);
  step.preempted.push_back(victim);
}

bool Scheduler::reserve(Sequence* seq, int64_t n_tokens, SchedulerStep& step, int64_t& budget) {
  while (!pool_.grow(seq->block_table, seq->num_computed + n_tokens)) {
    Sequence* victim = running_.back();
    preempt(victim, step, budget);
    if (victim == seq) return false;
  }
  return true;
}

SchedulerStep Scheduler::schedule() {
  SchedulerStep step;
  int64_t budget = cfg_.max_num_batched_tokens;
  auto add_chunk = [&](Sequence* seq, int64_t n) {
    step.chunks.push_back({seq, n, seq->num_computed + n == int64_t(seq->tokens.size())});
    step.num_tokens += n;
    budget -= n;
  };

  // 1. Running sequences: decodes first, then chunked prefills, each by arrival.
  std::vector<Sequence*> order;
  for (Sequence* s : running_)
    if (s->num_uncomputed() == 1) order.push_back(s);
  for (Sequence* s : running_)
    if (s->num_uncomputed() > 1) order.push_back(s);
  for (Sequence* seq : order) {
    if (seq->state != Sequence::State::Running) continue;  // preempted for an older one
    const int64_t n = std::min(seq->num_uncomputed(), budget);
    if (n <= 0) continue;
    if (reserve(seq, n, step, budget)) add_chunk(seq, n);
  }

  // 2. Waiting sequences, FCFS; admission never preempts, it waits for free pages.
  if (step.preempted.empty()) {
    while (!waiting_.empty() && int64_t(running_.size()) < cfg_.max_num_seqs && budget > 0) {
      Sequence* seq = waiting_.front();
      const int64_t n = std::min(seq->num_uncomputed(), budget);
      if (!pool_.grow(seq->block_table, seq->num_computed + n)) break;
      waiting_.pop_front();
      insert_running(seq);
      add_chunk(seq, n);
    }
  }
  return step;
}

void Scheduler::commit(const SchedulerStep& step) {
  for (const ScheduledChunk& c : step.chunks) {
    c.seq->num_computed += c.n_tokens;
    ATOM_CHECK(c.seq->num_computed <= int64_t(c.seq->tokens.size()), "scheduler: sequence {} computed past its end",
               c.seq->id);
  }
}

void Scheduler::finish(Sequence* seq) {
  std::erase(running_, seq);
  std::erase(waiting_, seq);
  pool_.release(seq->block_table);
  seq->state = Sequence::State::Finished;
}

}  // namespace atom::engine
