// The OpenAI wire format, independent of the HTTP library: request bodies of /v1/completions
// and /v1/chat/completions validated into engine requests, and the JSON of responses, stream
// chunks and errors.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "atom/engine/request.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom::server {

using nlohmann::json;

// An error answered to the client: HTTP status + OpenAI's {"error": {message, type, param, code}}.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;
  json body() const;
};

enum class Endpoint { Completions, ChatCompletions };

// What the server knows when it validates a request.
struct ServingLimits {
  std::string model_name;        // the only model served; other names are 404
  int64_t max_model_len = 0;     // prompt + max_tokens
  int64_t kv_capacity_tokens = 0;
};

struct ApiRequest {
  engine::Request request;
  bool stream = false;
  bool include_usage = false;    // stream_options.include_usage: a last chunk with usage
};

// Parses and validates a request body; throws ApiError (400, or 404 for another model).
// Defaults follow OpenAI: temperature 1, top_p 1, max_tokens 16 for completions and the rest of
// the context for chat; without a seed, sampling is seeded randomly.
ApiRequest parse_request(const std::string& body, Endpoint endpoint, const Tokenizer& tok,
                         const ServingLimits& limits);

// Response JSON. `id` is e.g. "cmpl-12", `created` Unix seconds.
struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
  Endpoint endpoint = Endpoint::Completions;
};
json usage_json(const engine::Usage& u);
json full_response(const ResponseMeta& m, const std::string& text, const std::string& finish_reason,
                   const engine::Usage& usage);
// One streamed chunk; finish_reason empty = null. Chat chunks carry {"role": "assistant"} on
// the first chunk (first_chunk) and {"content": text} when text is not empty.
json stream_chunk(const ResponseMeta& m, const std::string& text, const std::string& finish_reason,
                  bool first_chunk = false);
json usage_chunk(const ResponseMeta& m, const engine::Usage& usage);  // choices: [], usage

// The response id prefix of an endpoint ("cmpl" / "chatcmpl").
const char* id_prefix(Endpoint e);

}  // namespace atom::server
