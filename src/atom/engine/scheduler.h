// Iteration-level continuous batching (FCFS) with chunked prefill and preemption by recompute.
//
// Each call to schedule() builds one iteration under two budgets: at most max_num_seqs running
// sequences and at most max_num_batched_tokens new tokens. Running sequences that decode come
// first (one token each), then running sequences still prefilling (a chunk each), then waiting
// sequences in arrival order (a first chunk each; admission stops at the first that does not
// fit, so nobody overtakes). When the page pool cannot hold a running sequence's next tokens, the
// newest running sequence is preempted: its pages are freed, its KV forgotten, and it goes back
// to the front of the waiting queue to re-prefill prompt + generated tokens later.
#pragma once
#include <cstdint>
#include <deque>
#include <vector>

#include "atom/engine/page_pool.h"

namespace atom::engine {

struct Sequence {
  enum class State { Waiting, Running, Finished };
  int64_t id = 0;
  std::vector<int32_t> tokens;  // the prompt, then generated tokens
  int64_t prompt_len = 0;
  int64_t num_computed = 0;     // leading tokens whose K/V are in the cache
  BlockTable block_table;
  State state = State::Waiting;
  int64_t arrival = -1;         // FCFS order, set by Scheduler::add (kept across preemptions)
  int64_t num_preemptions = 0;

  int64_t num_generated() const { return int64_t(tokens.size()) - prompt_len; }
  int64_t num_uncomputed() const { return int64_t(tokens.size()) - num_computed; }
};

struct SchedulerConfig {
  int64_t max_num_seqs = 8;
  int64_t max_num_batched_tokens = 256;
  void validate() const;
};

struct ScheduledChunk {
  Sequence* seq;
  int64_t n_tokens;  // tokens[num_computed, num_computed + n_tokens) run this iteration
  bool want_logits;  // the chunk reaches the end of the sequence: sample its next token
};

struct SchedulerStep {
  std::vector<ScheduledChunk> chunks;
  std::vector<Sequence*> preempted;  // evicted this iteration: the executor must drop their KV
  int64_t num_tokens = 0;
};

class Scheduler {
 public:
  Scheduler(const SchedulerConfig& cfg, PagePool& pool);

  void add(Sequence* seq);         // to the back of the waiting queue
  SchedulerStep schedule();
  void commit(const SchedulerStep& step);  // the executor ran `step`: advance num_computed
  void finish(Sequence* seq);      // remove a waiting or running sequence and free its pages

  const std::deque<Sequence*>& waiting() const { return waiting_; }
  const std::vector<Sequence*>& running() const { return running_; }
  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const SchedulerConfig& config() const { return cfg_; }

 private:
  // Gives `seq` pages for `n_tokens` more tokens, preempting the newest running sequences
  // as needed. False when `seq` itself had to be preempted.
  bool reserve(Sequence* seq, int64_t n_tokens, SchedulerStep& step, int64_t& budget);
  void preempt(Sequence* victim, SchedulerStep& step, int64_t& budget);
  void insert_running(Sequence* seq);

  SchedulerConfig cfg_;
  PagePool& pool_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // by arrival: the back is the newest
  int64_t next_arrival_ = 0, num_preemptions_ = 0;
};

}  // namespace atom::engine
