#include "atom/server/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <sys/socket.h>
#include <thread>

#include "atom/server/openai_protocol.h"
#include "atom/server/prometheus.h"

namespace atom::server {

using namespace std::chrono_literals;

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Model output is valid UTF-8 by construction; replace rather than throw if it ever is not.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

ApiError from_engine_error(const engine::EngineError& e) {
  switch (e.kind()) {
    case engine::EngineError::Kind::QueueFull: return ApiError(429, e.what(), "rate_limit_error", "", "queue_full");
    case engine::EngineError::Kind::ShuttingDown: return ApiError(503, e.what(), "server_error", "", "shutting_down");
    case engine::EngineError::Kind::InvalidRequest: break;
  }
  return ApiError(400, e.what());
}

// A request the engine ended without finishing it (shutdown or a backend failure).
ApiError aborted(const std::string& error) {
  if (error.find("shutting down") != std::string::npos)
    return ApiError(503, "the server is shutting down", "server_error", "", "shutting_down");
  return ApiError(500, error.empty() ? "the request was aborted" : error, "server_error");
}

std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

// One streaming response: pulls engine events and writes SSE chunks as they come.
struct SseStream {
  engine::Engine* engine;
  engine::RequestHandle handle;
  ResponseMeta meta;
  bool include_usage = false;
  bool sent_first = false, finished = false;

  // httplib calls this until sink.done(); false ends the response (the client is gone).
  bool pump(httplib::DataSink& sink) {
    engine::RequestEvent ev;
    if (!handle->next(ev, 100ms)) return sink.is_writable();
    std::string out;
    const bool announce = meta.endpoint == Endpoint::ChatCompletions && !sent_first;  // the role chunk
    if (!ev.text.empty() || announce) {
      out += sse(stream_chunk(meta, ev.text, "", !sent_first));
      sent_first = true;
    }
    if (ev.finished) {
      finished = true;
      if (ev.finish_reason == engine::FinishReason::Abort) {
        out += sse(aborted(ev.error).body());
      } else {
        out += sse(stream_chunk(meta, "", engine::to_string(ev.finish_reason)));
        if (include_usage) out += sse(usage_chunk(meta, ev.usage));
      }
      out += "data: [DONE]\n\n";
    }
    if (!out.empty() && !sink.write(out.data(), out.size())) return false;
    if (finished) sink.done();
    return true;
  }
};

}  // namespace

struct HttpServer::Impl {
  Impl(engine::Engine& e, ServerOptions o) : engine(e), opt(std::move(o)) {
    limits = {opt.model_name, engine.max_model_len(), engine.kv_capacity_tokens()};
    created = unix_now();
    routes();
  }

  void routes() {
    const size_t threads = size_t(std::max(opt.http_threads, 2));
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    svr.set_payload_max_length(opt.max_body_bytes);
    svr.set_keep_alive_timeout(2);
    // Remember the listening socket: httplib 0.11 listens with a backlog of 5, which drops the
    // connections of a burst of clients (they retry after a second, or fail); bind() raises it.
    svr.set_socket_options([this](socket_t sock) {
      httplib::default_socket_options(sock);
      listen_socket = sock;
    });
    svr.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) {
      generation(q, r, Endpoint::Completions);
    });
    svr.Post("/v1/chat/completions", [this](const httplib::Request& q, httplib::Response& r) {
      generation(q, r, Endpoint::ChatCompletions);
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& r) {
      json model = {{"id", opt.model_name}, {"object", "model"}, {"created", created}, {"owned_by", "atom"},
                    {"max_model_len", std::min(limits.max_model_len, limits.kv_capacity_tokens)}};
      send_json(r, 200, {{"object", "list"}, {"data", json::array({model})}});
    });
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& r) {
      if (engine.shutting_down()) return send_json(r, 503, {{"status", "shutting down"}});
      send_json(r, 200, {{"status", "ok"}});
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& r) {
      r.set_content(render_prometheus(engine.stats(), opt.model_name), "text/plain; version=0.0.4; charset=utf-8");
    });
    // Unknown routes and httplib's own 4xx (e.g. a body over the limit) get OpenAI's error shape;
    // responses that already carry a body are left alone.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& q, httplib::Response& r) {
      if (!r.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      const std::string msg = r.status == 404 ? fmt::format("no route {} {}", q.method, q.path)
                                              : fmt::format("HTTP {} for {} {}", r.status, q.method, q.path);
      send_json(r, r.status, ApiError(r.status, msg, r.status == 404 ? "not_found_error" : "invalid_request_error")
                                 .body());
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& r, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg = fmt::format("internal error: {}", e.what());
      } catch (...) {
      }
      spdlog::error("http: {}", msg);
      send_json(r, 500, ApiError(500, msg, "server_error").body());
    });
  }

  void generation(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
    ApiRequest api;
    engine::RequestHandle handle;
    try {
      api = parse_request(req.body, endpoint, engine.tokenizer(), limits);
      handle = engine.submit(std::move(api.request));
    } catch (const ApiError& e) {
      return send_json(res, e.status, e.body());
    } catch (const engine::EngineError& e) {
      const ApiError err = from_engine_error(e);
      return send_json(res, err.status, err.body());
    } catch (const Error& e) {  // e.g. the tokenizer refusing the text
      return send_json(res, 400, ApiError(400, e.what()).body());
    }
    const ResponseMeta meta{fmt::format("{}-{}", id_prefix(endpoint), handle->id()), opt.model_name, unix_now(),
                            endpoint};
    if (!api.stream) {
      const engine::RequestOutput out = handle->wait();
      if (out.finish_reason == engine::FinishReason::Abort) {
        const ApiError err = aborted(out.error);
        return send_json(res, err.status, err.body());
      }
      return send_json(res, 200, full_response(meta, out.text, engine::to_string(out.finish_reason), out.usage));
    }
    auto stream = std::make_shared<SseStream>(SseStream{&engine, handle, meta, api.include_usage});
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream", [stream](size_t, httplib::DataSink& sink) { return stream->pump(sink); },
        [stream](bool) {
          // The response ended before the request did: the client went away. Free its pages.
          if (!stream->finished) stream->engine->cancel(stream->handle->id());
        });
  }

  engine::Engine& engine;
  ServerOptions opt;
  ServingLimits limits;
  int64_t created = 0;
  httplib::Server svr;
  std::thread thread;
  int port = -1;
  socket_t listen_socket = -1;
};

HttpServer::HttpServer(engine::Engine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  // Writing to a socket whose client left must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  if (impl_->port >= 0) return impl_->port;
  const ServerOptions& o = impl_->opt;
  ATOM_CHECK(o.port >= 0 && o.port <= 65535, "port must be in [0, 65535], got {}", o.port);
  if (o.port == 0) {
    impl_->port = impl_->svr.bind_to_any_port(o.host);
  } else if (impl_->svr.bind_to_port(o.host, o.port)) {
    impl_->port = o.port;
  }
  ATOM_CHECK(impl_->port > 0, "cannot listen on {}:{} (address in use, or not a local address?)", o.host, o.port);
  if (impl_->listen_socket >= 0) ::listen(impl_->listen_socket, SOMAXCONN);  // Linux updates the backlog
  return impl_->port;
}

void HttpServer::serve() {
  bind();
  impl_->svr.listen_after_bind();
}

void HttpServer::start() {
  bind();
  impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
  // httplib has no readiness signal in this version; stop() before the loop runs would be lost.
  for (int i = 0; i < 5000 && !impl_->svr.is_running(); ++i) std::this_thread::sleep_for(1ms);
}

void HttpServer::stop() {
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

int HttpServer::port() const { return impl_->port; }

std::string HttpServer::url() const { return fmt::format("http://{}:{}", impl_->opt.host, impl_->port); }

}  // namespace atom::server
