#include "atom/engine/request.h"

namespace atom::engine {

const char* to_string(FinishReason r) {
  switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Abort: return "abort";
    case FinishReason::None: break;
  }
  return "";
}

bool RequestStream::next(RequestEvent& ev, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!cv_.wait_for(lk, timeout, [&] { return !events_.empty(); })) return false;
  ev = std::move(events_.front());
  events_.pop_front();
  return true;
}

RequestEvent RequestStream::next() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return !events_.empty(); });
  RequestEvent ev = std::move(events_.front());
  events_.pop_front();
  return ev;
}

RequestOutput RequestStream::wait() {
  RequestOutput out;
  for (;;) {
    RequestEvent ev = next();
    out.text += ev.text;
    out.tokens.insert(out.tokens.end(), ev.tokens.begin(), ev.tokens.end());
    if (ev.finished) {
      out.finish_reason = ev.finish_reason;
      out.usage = ev.usage;
      out.error = ev.error;
      out.ttft_s = ev.ttft_s;
      out.tpot_s = ev.tpot_s;
      return out;
    }
  }
}

void RequestStream::push(RequestEvent ev) {
  {
    std::lock_guard lk(mu_);
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

}  // namespace atom::engine
