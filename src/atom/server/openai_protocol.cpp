#include "atom/server/openai_protocol.h"

#include <algorithm>
#include <random>

#include "atom/core/error.h"

namespace atom::server {

json ApiError::body() const {
  json e = {{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) e["param"] = param;
  if (!code.empty()) e["code"] = code;
  return {{"error", e}};
}

const char* id_prefix(Endpoint e) { return e == Endpoint::Completions ? "cmpl" : "chatcmpl"; }

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message, const std::string& code = "invalid_value") {
  throw ApiError(400, message, "invalid_request_error", param, code);
}

// The field, or null when absent or JSON null (OpenAI treats both as "not given").
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number_in(const json& body, const char* name, double fallback, double lo, double hi, bool lo_open = false) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) bad(name, fmt::format("'{}' must be a number", name), "invalid_type");
  const double x = v->get<double>();
  if (!(lo_open ? x > lo : x >= lo) || !(x <= hi))
    bad(name, fmt::format("'{}' must be in {}{}, {}], got {}", name, lo_open ? "(" : "[", lo, hi, x));
  return x;
}

int64_t integer_in(const json& body, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) bad(name, fmt::format("'{}' must be an integer", name), "invalid_type");
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
    bad(name, fmt::format("'{}' is out of range", name));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(name, fmt::format("'{}' must be a boolean", name), "invalid_type");
  return v->get<bool>();
}

std::vector<int32_t> token_ids(const json& arr, const char* name) {
  std::vector<int32_t> ids;
  for (const json& t : arr) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > INT32_MAX)
      bad(name, fmt::format("'{}' token ids must be non-negative integers", name), "invalid_type");
    ids.push_back(int32_t(t.get<int64_t>()));
  }
  return ids;
}

std::vector<int32_t> completion_prompt(const json& body, const Tokenizer& tok) {
  const json* p = field(body, "prompt");
  if (!p) bad("prompt", "'prompt' is required", "missing_required_parameter");
  if (p->is_string()) return tok.encode(p->get<std::string>(), tok.add_bos_default());
  if (!p->is_array() || p->empty())
    bad("prompt", "'prompt' must be a string, a list of token ids, or a list of one of those", "invalid_type");
  if ((*p)[0].is_number()) return token_ids(*p, "prompt");
  if (p->size() > 1) bad("prompt", "one prompt per request: batched prompts are not supported");
  const json& only = (*p)[0];
  if (only.is_string()) return tok.encode(only.get<std::string>(), tok.add_bos_default());
  if (only.is_array()) return token_ids(only, "prompt");
  bad("prompt", "'prompt' must be a string, a list of token ids, or a list of one of those", "invalid_type");
}

std::string message_content(const json& m) {
  const json* c = field(m, "content");
  if (!c) return "";
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) bad("messages", "message 'content' must be a string or a list of text parts", "invalid_type");
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      bad("messages", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<int32_t> chat_prompt(const json& body, const Tokenizer& tok) {
  const json* msgs = field(body, "messages");
  if (!msgs) bad("messages", "'messages' is required", "missing_required_parameter");
  if (!msgs->is_array() || msgs->empty()) bad("messages", "'messages' must be a non-empty list", "invalid_type");
  std::vector<ChatMessage> conversation;
  for (const json& m : *msgs) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      bad("messages", "each message must be an object with a string 'role'", "invalid_type");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for the system role
    if (role != "system" && role != "user" && role != "assistant")
      bad("messages", fmt::format("unsupported message role '{}' (system, user, assistant)", role));
    conversation.push_back({role, message_content(m)});
  }
  try {
    return tok.encode(tok.apply_chat_template(conversation, true), /*add_bos=*/false);
  } catch (const Error& e) {
    bad("messages", e.what());
  }
}

std::vector<std::string> stop_strings(const json& body) {
  const json* s = field(body, "stop");
  if (!s) return {};
  std::vector<std::string> out;
  if (s->is_string()) {
    out.push_back(s->get<std::string>());
  } else if (s->is_array()) {
    for (const json& x : *s) {
      if (!x.is_string()) bad("stop", "'stop' must be a string or a list of strings", "invalid_type");
      out.push_back(x.get<std::string>());
    }
  } else {
    bad("stop", "'stop' must be a string or a list of strings", "invalid_type");
  }
  if (out.size() > 16) bad("stop", "at most 16 stop strings");
  for (const std::string& x : out)
    if (x.empty()) bad("stop", "stop strings must not be empty");
  return out;
}

void reject_unsupported(const json& body, Endpoint endpoint) {
  if (integer_in(body, "n", 1, 1, INT32_MAX) != 1) bad("n", "only n = 1 is supported");
  if (integer_in(body, "best_of", 1, 1, INT32_MAX) != 1) bad("best_of", "only best_of = 1 is supported");
  if (const json* lp = field(body, "logprobs"); lp && !(lp->is_boolean() && !lp->get<bool>()))
    bad("logprobs", "logprobs are not supported");
  if (field(body, "top_logprobs")) bad("top_logprobs", "logprobs are not supported");
  if (endpoint == Endpoint::Completions && boolean(body, "echo", false)) bad("echo", "echo is not supported");
  if (field(body, "suffix")) bad("suffix", "suffix is not supported");
  for (const char* p : {"presence_penalty", "frequency_penalty"})
    if (number_in(body, p, 0.0, -2.0, 2.0) != 0.0) bad(p, fmt::format("'{}' is not supported (only 0)", p));
}

}  // namespace

ApiRequest parse_request(const std::string& text, Endpoint endpoint, const Tokenizer& tok,
                         const ServingLimits& limits) {
  const json body = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) bad("", "the request body is not valid JSON", "invalid_json");
  if (!body.is_object()) bad("", "the request body must be a JSON object", "invalid_type");

  if (const json* m = field(body, "model")) {
    if (!m->is_string()) bad("model", "'model' must be a string", "invalid_type");
    if (m->get<std::string>() != limits.model_name)
      throw ApiError(404, fmt::format("the model '{}' does not exist; this server serves '{}'", m->get<std::string>(),
                                      limits.model_name),
                     "invalid_request_error", "model", "model_not_found");
  }
  reject_unsupported(body, endpoint);

  ApiRequest out;
  engine::Request& r = out.request;
  r.prompt = endpoint == Endpoint::Completions ? completion_prompt(body, tok) : chat_prompt(body, tok);
  if (r.prompt.empty()) bad("prompt", "the prompt is empty");

  const int64_t limit = std::min(limits.max_model_len, limits.kv_capacity_tokens);
  const int64_t room = limit - int64_t(r.prompt.size());
  if (room < 1)
    bad(endpoint == Endpoint::Completions ? "prompt" : "messages",
        fmt::format("the prompt is {} tokens; this server handles at most {} tokens (prompt + completion)",
                    r.prompt.size(), limit),
        "context_length_exceeded");
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const int64_t fallback = endpoint == Endpoint::Completions ? std::min<int64_t>(16, room) : room;
  r.max_tokens = integer_in(body, max_name, fallback, 1, INT32_MAX);
  if (r.max_tokens > room)
    bad(max_name,
        fmt::format("the prompt ({} tokens) plus {} ({}) exceeds the {} tokens this server handles", r.prompt.size(),
                    max_name, r.max_tokens, limit),
        "context_length_exceeded");

  r.sampling.temperature = float(number_in(body, "temperature", 1.0, 0.0, 2.0));
  r.sampling.top_p = float(number_in(body, "top_p", 1.0, 0.0, 1.0, /*lo_open=*/true));
  const int64_t top_k = integer_in(body, "top_k", 0, -1, INT32_MAX);  // -1 or 0: off
  r.sampling.top_k = int(std::max<int64_t>(top_k, 0));
  if (const json* s = field(body, "seed")) {
    if (!s->is_number_integer()) bad("seed", "'seed' must be an integer", "invalid_type");
    r.sampling.seed = s->is_number_unsigned() ? s->get<uint64_t>() : uint64_t(s->get<int64_t>());
  } else {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    r.sampling.seed = rng();
  }
  r.stop = stop_strings(body);
  r.ignore_eos = boolean(body, "ignore_eos", false);
  if (const json* ids = field(body, "stop_token_ids")) {
    if (!ids->is_array()) bad("stop_token_ids", "'stop_token_ids' must be a list of token ids", "invalid_type");
    r.stop_token_ids = token_ids(*ids, "stop_token_ids");
  }

  out.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) bad("stream_options", "'stream_options' must be an object", "invalid_type");
    out.include_usage = boolean(*so, "include_usage", false);
  }
  return out;
}

json usage_json(const engine::Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

namespace {
json finish_json(const std::string& reason) { return reason.empty() ? json(nullptr) : json(reason); }

json envelope(const ResponseMeta& m, const char* object, json choices) {
  return {{"id", m.id}, {"object", object}, {"created", m.created}, {"model", m.model}, {"choices", std::move(choices)}};
}
}  // namespace

json full_response(const ResponseMeta& m, const std::string& text, const std::string& finish_reason,
                   const engine::Usage& usage) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish_reason)}};
  if (m.endpoint == Endpoint::Completions)
    choice["text"] = text;
  else
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  json r = envelope(m, m.endpoint == Endpoint::Completions ? "text_completion" : "chat.completion", json::array({choice}));
  r["usage"] = usage_json(usage);
  return r;
}

json stream_chunk(const ResponseMeta& m, const std::string& text, const std::string& finish_reason,
                  bool first_chunk) {
  json choice = {{"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_json(finish_reason)}};
  if (m.endpoint == Endpoint::Completions) {
    choice["text"] = text;
    return envelope(m, "text_completion", json::array({choice}));
  }
  json delta = json::object();
  if (first_chunk) delta["role"] = "assistant";
  if (!text.empty()) delta["content"] = text;
  choice["delta"] = delta;
  return envelope(m, "chat.completion.chunk", json::array({choice}));
}

json usage_chunk(const ResponseMeta& m, const engine::Usage& usage) {
  json r = envelope(m, m.endpoint == Endpoint::Completions ? "text_completion" : "chat.completion.chunk",
                    json::array());
  r["usage"] = usage_json(usage);
  return r;
}

}  // namespace atom::server
