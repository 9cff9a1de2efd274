// The serving engine: a background loop that runs the scheduler's iterations on an executor,
// samples each sequence's next token, detokenizes and streams it to the request's consumer.
//
// Thread model: submit/cancel/stats may be called from any thread; they only touch an inbox
// under a mutex. The loop thread alone owns the scheduler, the page pool and the executor.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "atom/core/error.h"
#include "atom/engine/executor.h"
#include "atom/engine/metrics.h"
#include "atom/engine/request.h"
#include "atom/engine/scheduler.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom::engine {

struct EngineOptions {
  SchedulerConfig scheduler;
  int64_t max_model_len = 0;  // prompt + max_tokens limit; 0 = the model context
  int64_t max_queue = 256;    // waiting requests at most; submit fails beyond
  bool autostart = true;      // false: requests queue until start() (tests)
};

// Why submit() refused a request: the server maps these to 400 / 429 / 503.
class EngineError : public Error {
 public:
  enum class Kind { InvalidRequest, QueueFull, ShuttingDown };
  EngineError(Kind kind, const std::string& msg) : Error(msg), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

struct EngineStats {
  int64_t waiting = 0, running = 0;            // requests queued / in the running batch
  int64_t kv_pages_used = 0, kv_pages_total = 0, kv_pages_peak = 0;
  int64_t largest_batch = 0;                   // most sequences in one iteration so far
  int64_t iterations = 0, preemptions = 0;
  int64_t prompt_tokens = 0;     // prompts of finished requests
  int64_t generated_tokens = 0;  // every token sampled so far (running requests included)
  int64_t finished_stop = 0, finished_length = 0, finished_abort = 0;
  Histogram ttft{ttft_buckets()}, tpot{tpot_buckets()};
};

using RequestHandle = std::shared_ptr<RequestStream>;

class Engine {
 public:
  Engine(std::unique_ptr<Executor> executor, std::shared_ptr<const Tokenizer> tokenizer,
         const EngineOptions& options = {});
  ~Engine();  // shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; throws EngineError (invalid / queue full / shutting down).
  RequestHandle submit(Request request);
  // Ends a request with finish reason "abort"; its pages are freed at the next iteration.
  // Unknown or finished ids are ignored.
  void cancel(int64_t request_id);

  void start();     // starts the loop thread (done by the constructor unless !autostart)
  void shutdown();  // refuses new requests, aborts the others, joins the loop
  // Waits until no request is queued or running; false when `timeout` passed first.
  bool wait_idle(std::chrono::milliseconds timeout);

  EngineStats stats() const;
  int64_t max_model_len() const { return max_model_len_; }
  int64_t kv_capacity_tokens() const { return pool_.num_pages() * pool_.page_size(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const Executor& executor() const { return *executor_; }
  bool shutting_down() const;

 private:
  struct Live;  // a request inside the engine
  void validate(const Request& r) const;
  void loop();
  void run_iteration(std::vector<std::unique_ptr<Live>>& fresh, std::vector<int64_t>& cancels);
  void on_token(Live& live, int32_t id);  // the token sampled for this request
  void finish(Live& live, FinishReason reason, RequestEvent ev, const std::string& error = "");
  void publish_stats();

  std::unique_ptr<Executor> executor_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineOptions options_;
  int64_t max_model_len_;
  PagePool pool_;
  Scheduler scheduler_;
  std::map<int64_t, std::unique_ptr<Live>> live_;  // loop thread only
  std::vector<float> logits_;   // host sampling: the step's logits rows
  std::vector<int32_t> ids_;    // device sampling: the step's sampled ids

  mutable std::mutex mu_;  // guards everything below
  std::condition_variable work_cv_, idle_cv_;
  std::vector<std::unique_ptr<Live>> inbox_;
  std::vector<int64_t> cancels_;
  EngineStats stats_;
  int64_t next_id_ = 1;
  bool stopping_ = false, busy_ = false;
  std::thread thread_;
};

}  // namespace atom::engine
