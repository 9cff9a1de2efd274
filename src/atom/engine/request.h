// What a client submits to the Engine and what it gets back: a stream of events (text deltas
// that never split a UTF-8 character, then one final event with the finish reason and usage).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "atom/model/sampler.h"

namespace atom::engine {

struct Request {
  std::vector<int32_t> prompt;          // token ids (already templated / with BOS)
  SamplingParams sampling;              // greedy by default
  int64_t max_tokens = 16;              // generated tokens at most
  std::vector<std::string> stop;        // stop strings (the text ends before the match)
  std::vector<int32_t> stop_token_ids;  // extra ids that end generation (not output)
  bool ignore_eos = false;              // keep going past the tokenizer's stop ids
};

enum class FinishReason { None, Stop, Length, Abort };
const char* to_string(FinishReason r);  // "stop" | "length" | "abort" ("" for None)

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // generated tokens, a stop token excluded
};

struct RequestEvent {
  std::string text;              // new text since the previous event
  std::vector<int32_t> tokens;   // new token ids since the previous event
  bool finished = false;         // the last event of the request
  FinishReason finish_reason = FinishReason::None;
  Usage usage;                   // set on the final event
  std::string error;             // set when the engine aborted the request because of a failure
  double ttft_s = 0, tpot_s = 0; // set on the final event (0 when not measured)
};

// Everything a finished request produced (RequestStream::wait()).
struct RequestOutput {
  std::string text;
  std::vector<int32_t> tokens;
  FinishReason finish_reason = FinishReason::None;
  Usage usage;
  std::string error;
  double ttft_s = 0, tpot_s = 0;
};

// The consumer's end of a request: a thread-safe queue the engine pushes events into.
class RequestStream {
 public:
  explicit RequestStream(int64_t id) : id_(id) {}
  int64_t id() const { return id_; }
  // Waits up to `timeout` for the next event; false when none came.
  bool next(RequestEvent& ev, std::chrono::milliseconds timeout);
  RequestEvent next();  // waits as long as it takes
  // Reads the remaining events up to the final one and returns them combined.
  RequestOutput wait();
  void push(RequestEvent ev);  // engine side

 private:
  int64_t id_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<RequestEvent> events_;
};

}  // namespace atom::engine
