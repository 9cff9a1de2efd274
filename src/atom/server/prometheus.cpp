#include "atom/server/prometheus.h"

#include <fmt/format.h>

namespace atom::server {

namespace {

class Exposition {
 public:
  explicit Exposition(const std::string& model) : labels_(fmt::format("model_name=\"{}\"", escape(model))) {}

  void metric(const char* name, const char* type, const char* help, double value, const std::string& extra = "") {
    header(name, type, help);
    sample(name, value, extra);
  }
  void header(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(const std::string& name, double value, const std::string& extra = "") {
    out_ += fmt::format("{}{{{}{}{}}} {}\n", name, labels_, extra.empty() ? "" : ",", extra, value);
  }
  void histogram(const char* name, const char* help, const engine::Histogram& h) {
    header(name, "histogram", help);
    const auto counts = h.cumulative_counts();
    for (size_t i = 0; i < counts.size(); ++i)
      sample(fmt::format("{}_bucket", name), double(counts[i]), fmt::format("le=\"{}\"", h.upper_bounds()[i]));
    sample(fmt::format("{}_bucket", name), double(h.count()), "le=\"+Inf\"");
    sample(fmt::format("{}_sum", name), h.sum());
    sample(fmt::format("{}_count", name), double(h.count()));
  }
  std::string take() { return std::move(out_); }

 private:
  static std::string escape(const std::string& s) {
    std::string r;
    for (char c : s) {
      if (c == '\\' || c == '"') r += '\\';
      if (c == '\n') {
        r += "\\n";
        continue;
      }
      r += c;
    }
    return r;
  }
  std::string labels_, out_;
};

}  // namespace

std::string render_prometheus(const engine::EngineStats& s, const std::string& model_name) {
  Exposition e(model_name);
  e.metric("atom_num_requests_waiting", "gauge", "Requests waiting to be scheduled.", double(s.waiting));
  e.metric("atom_num_requests_running", "gauge", "Requests in the running batch.", double(s.running));
  e.metric("atom_kv_cache_pages_used", "gauge", "KV cache pages in use.", double(s.kv_pages_used));
  e.metric("atom_kv_cache_pages_total", "gauge", "KV cache pages in the pool.", double(s.kv_pages_total));
  e.metric("atom_kv_cache_usage_ratio", "gauge", "Fraction of KV cache pages in use.",
           s.kv_pages_total ? double(s.kv_pages_used) / double(s.kv_pages_total) : 0.0);
  e.metric("atom_largest_batch", "gauge", "Most sequences in one iteration so far.", double(s.largest_batch));
  e.metric("atom_prompt_tokens_total", "counter", "Prompt tokens of finished requests (rate = prefill tokens/s).",
           double(s.prompt_tokens));
  e.metric("atom_generation_tokens_total", "counter", "Generated tokens (rate = output tokens/s).",
           double(s.generated_tokens));
  e.metric("atom_iterations_total", "counter", "Engine iterations (batches run).", double(s.iterations));
  e.metric("atom_num_preemptions_total", "counter", "Sequences preempted because the KV pool ran out.",
           double(s.preemptions));
  e.header("atom_request_success_total", "counter", "Finished requests by finish reason.");
  e.sample("atom_request_success_total", double(s.finished_stop), "finished_reason=\"stop\"");
  e.sample("atom_request_success_total", double(s.finished_length), "finished_reason=\"length\"");
  e.sample("atom_request_success_total", double(s.finished_abort), "finished_reason=\"abort\"");
  e.histogram("atom_time_to_first_token_seconds", "Time to first token.", s.ttft);
  e.histogram("atom_time_per_output_token_seconds", "Time per output token after the first.", s.tpot);
  return e.take();
}

}  // namespace atom::server
