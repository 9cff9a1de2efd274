// Page pool and scheduler on their own (no model): budgets, chunked prefill, FCFS admission,
// preemption of the newest sequence and its recompute.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <set>

#include "atom/engine/page_pool.h"
#include "atom/engine/scheduler.h"
#include "test_util.h"

namespace atom::engine {
namespace {

using atom::test::expect_error;
using atom::test::fresh_seed;

Sequence make_seq(int64_t id, int64_t prompt_len) {
  Sequence s;
  s.id = id;
  s.tokens.assign(size_t(prompt_len), 7);
  s.prompt_len = prompt_len;
  return s;
}

// What the engine does after an iteration: advance, then append a sampled token to every
// sequence whose chunk produced logits.
void run(Scheduler& sched, const SchedulerStep& step) {
  sched.commit(step);
  for (const ScheduledChunk& c : step.chunks)
    if (c.want_logits) c.seq->tokens.push_back(1);
}

const ScheduledChunk* chunk_of(const SchedulerStep& step, const Sequence& s) {
  for (const auto& c : step.chunks)
    if (c.seq == &s) return &c;
  return nullptr;
}

TEST(PagePool, GrowReleaseAndStats) {
  PagePool pool(10, 4);
  EXPECT_EQ(pool.pages_for(0), 0);
  EXPECT_EQ(pool.pages_for(1), 1);
  EXPECT_EQ(pool.pages_for(8), 2);
  EXPECT_EQ(pool.pages_for(9), 3);
  BlockTable a, b;
  ASSERT_TRUE(pool.grow(a, 9));  // 3 pages
  EXPECT_EQ(a.size(), 3u);
  ASSERT_TRUE(pool.grow(a, 12));  // still 3
  EXPECT_EQ(a.size(), 3u);
  ASSERT_TRUE(pool.grow(b, 28));  // 7 pages: pool now full
  EXPECT_EQ(pool.num_free(), 0);
  EXPECT_FALSE(pool.grow(a, 13));  // needs a 4th page: refused, table unchanged
  EXPECT_EQ(a.size(), 3u);
  std::set<int32_t> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 10u) << "a page was handed out twice";
  EXPECT_EQ(pool.peak_used(), 10);
  pool.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(pool.num_used(), 7);
  EXPECT_DOUBLE_EQ(pool.usage(), 0.7);
  BlockTable stale = {b[0]};
  pool.release(b);
  expect_error([&] { pool.release(stale); }, {"released but not allocated"});
  EXPECT_EQ(pool.num_free(), 10);
  expect_error([] { PagePool(0, 4); }, {"number of pages"});
  expect_error([] { PagePool(4, 0); }, {"page size"});
}

TEST(PagePool, RandomChurnNeverLeaksOrDuplicates) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  PagePool pool(64, 8);
  std::vector<BlockTable> tables(10);
  std::vector<int64_t> lens(10, 0);
  for (int it = 0; it < 2000; ++it) {
    const size_t i = rng() % tables.size();
    if (rng() % 4 == 0) {
      pool.release(tables[i]);
      lens[i] = 0;
    } else if (pool.grow(tables[i], lens[i] + int64_t(rng() % 20))) {
      lens[i] = int64_t(tables[i].size()) * 8;
    }
    std::set<int32_t> seen;
    size_t held = 0;
    for (const auto& t : tables) {
      seen.insert(t.begin(), t.end());
      held += t.size();
    }
    ASSERT_EQ(seen.size(), held) << "a page is in two block tables";
    ASSERT_EQ(int64_t(held), pool.num_used());
  }
}

TEST(Scheduler, ChunkedPrefillRespectsTheTokenBudget) {
  PagePool pool(100, 4);
  Scheduler sched({.max_num_seqs = 4, .max_num_batched_tokens = 8}, pool);
  Sequence s = make_seq(1, 20);
  sched.add(&s);
  std::vector<int64_t> chunks;
  std::vector<bool> logits;
  for (int i = 0; i < 3; ++i) {
    SchedulerStep st = sched.schedule();
    ASSERT_EQ(st.chunks.size(), 1u);
    EXPECT_LE(st.num_tokens, 8);
    chunks.push_back(st.chunks[0].n_tokens);
    logits.push_back(st.chunks[0].want_logits);
    EXPECT_EQ(int64_t(s.block_table.size()), pool.pages_for(s.num_computed + st.chunks[0].n_tokens));
    run(sched, st);
  }
  EXPECT_EQ(chunks, (std::vector<int64_t>{8, 8, 4}));
  EXPECT_EQ(logits, (std::vector<bool>{false, false, true}));
  EXPECT_EQ(s.num_generated(), 1);
  SchedulerStep decode = sched.schedule();  // now one token per iteration
  ASSERT_EQ(decode.chunks.size(), 1u);
  EXPECT_EQ(decode.chunks[0].n_tokens, 1);
  EXPECT_TRUE(decode.chunks[0].want_logits);
}

TEST(Scheduler, DecodesGoFirstThenPrefillsShareTheRest) {
  PagePool pool(100, 4);
  Scheduler sched({.max_num_seqs = 4, .max_num_batched_tokens = 6}, pool);
  Sequence a = make_seq(1, 3), b = make_seq(2, 3), c = make_seq(3, 30);
  sched.add(&a);
  sched.add(&b);
  run(sched, sched.schedule());  // prefills a and b (6 tokens)
  ASSERT_EQ(a.num_generated(), 1);
  ASSERT_EQ(b.num_generated(), 1);
  sched.add(&c);
  SchedulerStep st = sched.schedule();
  ASSERT_EQ(st.chunks.size(), 3u);
  EXPECT_EQ(st.chunks[0].seq, &a);
  EXPECT_EQ(st.chunks[1].seq, &b);
  EXPECT_EQ(st.chunks[0].n_tokens, 1);
  EXPECT_EQ(st.chunks[1].n_tokens, 1);
  EXPECT_EQ(st.chunks[2].seq, &c);
  EXPECT_EQ(st.chunks[2].n_tokens, 4);  // what the budget leaves
  EXPECT_FALSE(st.chunks[2].want_logits);
  EXPECT_EQ(st.num_tokens, 6);
}

TEST(Scheduler, ConfigIsValidated) {
  PagePool pool(4, 4);
  expect_error([&] { Scheduler(SchedulerConfig{.max_num_seqs = 0}, pool); }, {"max_num_seqs must be >= 1"});
  expect_error([&] { Scheduler(SchedulerConfig{.max_num_seqs = 8, .max_num_batched_tokens = 4}, pool); },
               {"max_num_batched_tokens (4) must be >= max_num_seqs (8)"});
}

TEST(Scheduler, MaxNumSeqsAndFcfsAdmission) {
  PagePool pool(100, 4);
  Scheduler sched({.max_num_seqs = 2, .max_num_batched_tokens = 100}, pool);
  std::vector<Sequence> seqs;
  for (int i = 0; i < 4; ++i) seqs.push_back(make_seq(i, 5));
  for (auto& s : seqs) sched.add(&s);
  SchedulerStep st = sched.schedule();
  ASSERT_EQ(st.chunks.size(), 2u);
  EXPECT_EQ(st.chunks[0].seq, &seqs[0]);
  EXPECT_EQ(st.chunks[1].seq, &seqs[1]);
  EXPECT_EQ(sched.waiting().size(), 2u);
  run(sched, st);
  sched.finish(&seqs[0]);
  st = sched.schedule();
  ASSERT_EQ(st.chunks.size(), 2u);
  EXPECT_EQ(st.chunks[1].seq, &seqs[2]) << "the oldest waiting sequence is admitted next";
}

TEST(Scheduler, AdmissionWaitsForPagesInsteadOfOvertaking) {
  PagePool pool(6, 4);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 100}, pool);
  Sequence a = make_seq(1, 16), big = make_seq(2, 12), small = make_seq(3, 2);
  sched.add(&a);
  run(sched, sched.schedule());  // a holds 4 pages (16 tokens)
  sched.add(&big);
  sched.add(&small);
  SchedulerStep st = sched.schedule();  // a decodes (5th page); big needs 3 pages, 1 left
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, &a);
  EXPECT_EQ(sched.waiting().front(), &big) << "small must not overtake big";
  EXPECT_EQ(sched.waiting().size(), 2u);
}

TEST(Scheduler, PreemptsTheNewestAndRecomputesItLater) {
  // 4 pages of 4 tokens: three sequences of 4-token prompts fill 3 pages after prefill; decodes
  // then need a second page each.
  PagePool pool(4, 4);
  Scheduler sched({.max_num_seqs = 8, .max_num_batched_tokens = 100}, pool);
  Sequence a = make_seq(1, 4), b = make_seq(2, 4), c = make_seq(3, 4);
  sched.add(&a);
  sched.add(&b);
  sched.add(&c);
  run(sched, sched.schedule());
  ASSERT_EQ(pool.num_used(), 3);
  // a takes the last page; b needs one: c (the newest) is evicted.
  SchedulerStep st = sched.schedule();
  ASSERT_EQ(st.preempted.size(), 1u);
  EXPECT_EQ(st.preempted[0], &c);
  EXPECT_EQ(c.state, Sequence::State::Waiting);
  EXPECT_EQ(c.num_computed, 0);
  EXPECT_TRUE(c.block_table.empty());
  EXPECT_EQ(sched.waiting().front(), &c);
  EXPECT_EQ(c.num_preemptions, 1);
  EXPECT_EQ(sched.num_preemptions(), 1);
  EXPECT_EQ(chunk_of(st, c), nullptr);
  ASSERT_NE(chunk_of(st, a), nullptr);
  ASSERT_NE(chunk_of(st, b), nullptr);
  EXPECT_EQ(pool.num_used(), 4);
  run(sched, st);
  // Finish a and b: c comes back and re-prefills its prompt plus the token it had generated.
  sched.finish(&a);
  sched.finish(&b);
  EXPECT_EQ(pool.num_used(), 0);
  st = sched.schedule();
  ASSERT_EQ(st.chunks.size(), 1u);
  EXPECT_EQ(st.chunks[0].seq, &c);
  EXPECT_EQ(st.chunks[0].n_tokens, 5);
  EXPECT_TRUE(st.chunks[0].want_logits);
}

TEST(Scheduler, RandomWorkloadKeepsPagesConsistent) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  PagePool pool(12, 4);
  Scheduler sched({.max_num_seqs = 4, .max_num_batched_tokens = 10}, pool);
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<int64_t> limit;
  for (int i = 0; i < 12; ++i) {
    seqs.push_back(std::make_unique<Sequence>(make_seq(i, 1 + int64_t(rng() % 20))));
    limit.push_back(1 + int64_t(rng() % 20));  // prompt + limit <= 40 <= pool tokens (48)
    sched.add(seqs.back().get());
  }
  int iterations = 0;
  while (sched.has_work()) {
    ASSERT_LT(++iterations, 2000) << "no progress";
    SchedulerStep st = sched.schedule();
    ASSERT_FALSE(st.chunks.empty());
    ASSERT_LE(st.num_tokens, 10);
    ASSERT_LE(sched.running().size(), 4u);
    std::set<const Sequence*> in_batch;
    for (const auto& ch : st.chunks) {
      ASSERT_TRUE(in_batch.insert(ch.seq).second) << "a sequence is twice in one batch";
      ASSERT_EQ(ch.seq->state, Sequence::State::Running);
      ASSERT_GE(int64_t(ch.seq->block_table.size()) * 4, ch.seq->num_computed + ch.n_tokens);
    }
    for (const Sequence* p : st.preempted) ASSERT_EQ(in_batch.count(p), 0u) << "a preempted sequence still runs";
    int64_t held = 0;
    for (Sequence* s : sched.running()) held += int64_t(s->block_table.size());
    ASSERT_EQ(held, pool.num_used());
    run(sched, st);
    for (auto& s : seqs)
      if (s->state == Sequence::State::Running && s->num_generated() >= limit[size_t(s->id)]) sched.finish(s.get());
  }
  EXPECT_EQ(pool.num_used(), 0);
  EXPECT_GT(sched.num_preemptions(), 0) << "the pool was meant to be too small";
  for (size_t i = 0; i < seqs.size(); ++i) EXPECT_EQ(seqs[i]->num_generated(), limit[i]);
}

}  // namespace
}  // namespace atom::engine
