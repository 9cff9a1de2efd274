#include "atom/engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "atom/model/text_stream.h"

namespace atom::engine {

using Clock = std::chrono::steady_clock;

struct Engine::Live {
  Live(int64_t id, Request r, const Tokenizer& tok)
      : request(std::move(r)), stream(std::make_shared<RequestStream>(id)), sampler(request.sampling),
        text(tok, request.stop), arrival(Clock::now()) {
    seq.id = id;
    seq.tokens = request.prompt;
    seq.prompt_len = int64_t(request.prompt.size());
  }
  Request request;
  Sequence seq;
  RequestHandle stream;
  Sampler sampler;
  StopStringStream text;
  Clock::time_point arrival, first_token;
  bool has_first_token = false;
};

namespace {
double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

bool contains(const std::vector<int32_t>& v, int32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

RequestEvent abort_event(int64_t prompt_tokens, const std::string& error) {
  RequestEvent ev;
  ev.finished = true;
  ev.finish_reason = FinishReason::Abort;
  ev.usage.prompt_tokens = prompt_tokens;
  ev.error = error;
  return ev;
}
}  // namespace

Engine::Engine(std::unique_ptr<Executor> executor, std::shared_ptr<const Tokenizer> tokenizer,
               const EngineOptions& options)
    : executor_(std::move(executor)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      max_model_len_(0),
      pool_(executor_ ? executor_->num_pages() : 1, executor_ ? executor_->page_size() : 1),
      scheduler_(options.scheduler, pool_) {
  ATOM_CHECK(executor_ != nullptr, "engine: no executor");
  ATOM_CHECK(tokenizer_ != nullptr, "engine: no tokenizer");
  ATOM_CHECK(options.max_queue >= 1, "max_queue must be >= 1, got {}", options.max_queue);
  const int64_t context = executor_->config().max_position_embeddings;
  ATOM_CHECK(options.max_model_len <= context, "max_model_len {} exceeds the model context {}",
             options.max_model_len, context);
  max_model_len_ = options.max_model_len > 0 ? options.max_model_len : context;
  stats_.kv_pages_total = pool_.num_pages();
  if (options.autostart) start();
}

Engine::~Engine() { shutdown(); }

void Engine::start() {
  std::lock_guard lk(mu_);
  if (stopping_ || thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

bool Engine::shutting_down() const {
  std::lock_guard lk(mu_);
  return stopping_;
}

void Engine::validate(const Request& r) const {
  auto invalid = [](const std::string& msg) { throw EngineError(EngineError::Kind::InvalidRequest, msg); };
  if (r.prompt.empty()) invalid("the prompt is empty");
  const int32_t vocab = executor_->config().vocab_size;
  for (int32_t t : r.prompt)
    if (t < 0 || t >= vocab) invalid(fmt::format("prompt token id {} is out of range [0, {})", t, vocab));
  if (r.max_tokens < 1) invalid(fmt::format("max_tokens must be >= 1, got {}", r.max_tokens));
  const int64_t total = int64_t(r.prompt.size()) + r.max_tokens;
  if (total > max_model_len_)
    invalid(fmt::format("the prompt ({} tokens) plus max_tokens ({}) is {} tokens, more than the maximum model "
                        "length {}",
                        r.prompt.size(), r.max_tokens, total, max_model_len_));
  if (total > kv_capacity_tokens())
    invalid(fmt::format("the prompt ({} tokens) plus max_tokens ({}) is {} tokens, more than the whole KV cache "
                        "({} pages of {} tokens)",
                        r.prompt.size(), r.max_tokens, total, pool_.num_pages(), pool_.page_size()));
  try {
    r.sampling.validate();
  } catch (const Error& e) {
    invalid(e.what());
  }
}

RequestHandle Engine::submit(Request request) {
  validate(request);
  std::unique_lock lk(mu_);
  if (stopping_) throw EngineError(EngineError::Kind::ShuttingDown, "the server is shutting down");
  const int64_t queued = int64_t(inbox_.size()) + stats_.waiting;
  if (queued >= options_.max_queue)
    throw EngineError(EngineError::Kind::QueueFull,
                      fmt::format("the request queue is full ({} waiting); retry later", queued));
  auto live = std::make_unique<Live>(next_id_++, std::move(request), *tokenizer_);
  RequestHandle handle = live->stream;
  inbox_.push_back(std::move(live));
  lk.unlock();
  work_cv_.notify_all();
  return handle;
}

void Engine::cancel(int64_t request_id) {
  std::unique_lock lk(mu_);
  auto queued = std::find_if(inbox_.begin(), inbox_.end(), [&](const auto& l) { return l->seq.id == request_id; });
  if (queued != inbox_.end()) {  // never reached the scheduler: answer it here
    (*queued)->stream->push(abort_event((*queued)->seq.prompt_len, ""));
    inbox_.erase(queued);
    stats_.finished_abort++;
    lk.unlock();
    idle_cv_.notify_all();
    return;
  }
  cancels_.push_back(request_id);
  lk.unlock();
  work_cv_.notify_all();
}

void Engine::shutdown() {
  std::vector<std::unique_ptr<Live>> never_started;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    never_started.swap(inbox_);
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // The loop has ended: this thread now owns the scheduler.
  for (auto& l : never_started) l->stream->push(abort_event(l->seq.prompt_len, "the server is shutting down"));
  while (!live_.empty()) finish(*live_.begin()->second, FinishReason::Abort, {}, "the server is shutting down");
  publish_stats();
}

bool Engine::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return idle_cv_.wait_for(lk, timeout, [&] {
    return !busy_ && inbox_.empty() && cancels_.empty() && stats_.waiting == 0 && stats_.running == 0;
  });
}

EngineStats Engine::stats() const {
  std::lock_guard lk(mu_);
  EngineStats s = stats_;
  s.waiting += int64_t(inbox_.size());
  return s;
}

void Engine::loop() {
  for (;;) {
    std::vector<std::unique_ptr<Live>> fresh;
    std::vector<int64_t> cancels;
    {
      std::unique_lock lk(mu_);
      work_cv_.wait(lk, [&] { return stopping_ || !inbox_.empty() || !cancels_.empty() || scheduler_.has_work(); });
      if (stopping_) return;
      fresh.swap(inbox_);
      cancels.swap(cancels_);
      busy_ = true;
    }
    run_iteration(fresh, cancels);
  }
}

void Engine::run_iteration(std::vector<std::unique_ptr<Live>>& fresh, std::vector<int64_t>& cancels) {
  for (auto& l : fresh) {
    scheduler_.add(&l->seq);
    const int64_t id = l->seq.id;
    live_.emplace(id, std::move(l));
  }
  for (int64_t id : cancels)
    if (auto it = live_.find(id); it != live_.end()) finish(*it->second, FinishReason::Abort, {});
  if (!scheduler_.has_work()) return publish_stats();

  const SchedulerStep step = scheduler_.schedule();
  for (const Sequence* s : step.preempted) executor_->release(s->id);
  if (step.chunks.empty()) {
    // Only possible when the head of the queue cannot fit an empty pool, which submit()
    // rejects; fail it rather than spin.
    if (scheduler_.running().empty() && !scheduler_.waiting().empty())
      finish(*live_.at(scheduler_.waiting().front()->id), FinishReason::Abort, {},
             "the request does not fit in the KV cache");
    return publish_stats();
  }

  std::vector<SeqStep> batch;
  int64_t n_logits = 0;
  for (const ScheduledChunk& c : step.chunks) {
    const Sequence& s = *c.seq;
    batch.push_back({s.id, s.tokens.data() + s.num_computed, c.n_tokens, s.num_computed, s.block_table.data(),
                     int64_t(s.block_table.size()), c.want_logits});
    n_logits += c.want_logits;
  }
  const int64_t vocab = executor_->config().vocab_size;
  const bool device_sampling = executor_->samples_on_device();
  try {
    if (device_sampling) {  // only ids cross from the device; the rows carry each request's sampling
      std::vector<RowSampling> rows;
      for (const ScheduledChunk& c : step.chunks)
        if (c.want_logits) {
          const Live& l = *live_.at(c.seq->id);
          rows.push_back({l.request.sampling, uint64_t(l.seq.num_generated())});
        }
      ids_.resize(size_t(n_logits));
      executor_->step_sample(batch, rows, ids_.data());
    } else {
      logits_.resize(size_t(n_logits * vocab));
      executor_->step(batch, logits_.data());
    }
  } catch (const std::exception& e) {
    // A failing backend must not take the server down: end this batch's requests with the error.
    spdlog::error("engine: executor {} failed: {}", executor_->name(), e.what());
    for (const ScheduledChunk& c : step.chunks)
      finish(*live_.at(c.seq->id), FinishReason::Abort, {}, fmt::format("internal error: {}", e.what()));
    return publish_stats();
  }
  scheduler_.commit(step);
  {
    std::lock_guard lk(mu_);
    stats_.iterations++;
    stats_.largest_batch = std::max(stats_.largest_batch, int64_t(step.chunks.size()));
    stats_.preemptions = scheduler_.num_preemptions();
  }
  int64_t row = 0;
  for (const ScheduledChunk& c : step.chunks) {
    if (!c.want_logits) continue;
    const int64_t id = c.seq->id, r = row++;
    try {
      Live& l = *live_.at(id);
      on_token(l, device_sampling ? ids_[size_t(r)] : l.sampler.sample(logits_.data() + r * vocab, vocab));
    } catch (const std::exception& e) {  // e.g. a sampled id the tokenizer cannot decode
      spdlog::error("engine: request {} failed: {}", id, e.what());
      if (auto it = live_.find(id); it != live_.end())
        finish(*it->second, FinishReason::Abort, {}, fmt::format("internal error: {}", e.what()));
    }
  }
  publish_stats();
}

void Engine::on_token(Live& live, int32_t id) {
  if (!live.has_first_token) {
    live.has_first_token = true;
    live.first_token = Clock::now();
  }
  RequestEvent ev;
  if ((!live.request.ignore_eos && contains(tokenizer_->stop_ids(), id)) || contains(live.request.stop_token_ids, id))
    return finish(live, FinishReason::Stop, std::move(ev));
  live.seq.tokens.push_back(id);
  {
    std::lock_guard lk(mu_);
    stats_.generated_tokens++;
  }
  ev.tokens.push_back(id);
  ev.text = live.text.push(id);
  if (live.text.stopped()) return finish(live, FinishReason::Stop, std::move(ev));
  if (live.seq.num_generated() >= live.request.max_tokens) return finish(live, FinishReason::Length, std::move(ev));
  live.stream->push(std::move(ev));
}

void Engine::finish(Live& live, FinishReason reason, RequestEvent ev, const std::string& error) {
  const Clock::time_point now = Clock::now();
  ev.text += live.text.finish(/*flush_decoder=*/reason == FinishReason::Length);
  ev.finished = true;
  ev.finish_reason = reason;
  ev.error = error;
  ev.usage = {live.seq.prompt_len, live.seq.num_generated()};
  if (live.has_first_token) ev.ttft_s = seconds(live.first_token - live.arrival);
  if (ev.usage.completion_tokens > 1)
    ev.tpot_s = seconds(now - live.first_token) / double(ev.usage.completion_tokens - 1);
  {
    std::lock_guard lk(mu_);
    stats_.prompt_tokens += live.seq.prompt_len;
    if (reason == FinishReason::Stop) stats_.finished_stop++;
    if (reason == FinishReason::Length) stats_.finished_length++;
    if (reason == FinishReason::Abort) stats_.finished_abort++;
    if (live.has_first_token) stats_.ttft.observe(ev.ttft_s);
    if (ev.usage.completion_tokens > 1) stats_.tpot.observe(ev.tpot_s);
  }
  scheduler_.finish(&live.seq);
  executor_->release(live.seq.id);
  live.stream->push(std::move(ev));
  live_.erase(live.seq.id);  // `live` is gone from here on
}

void Engine::publish_stats() {
  {
    std::lock_guard lk(mu_);
    stats_.waiting = int64_t(scheduler_.waiting().size());
    stats_.running = int64_t(scheduler_.running().size());
    stats_.kv_pages_used = pool_.num_used();
    stats_.kv_pages_peak = pool_.peak_used();
    busy_ = false;
  }
  idle_cv_.notify_all();
}

}  // namespace atom::engine
