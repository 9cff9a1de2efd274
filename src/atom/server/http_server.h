// The OpenAI-compatible HTTP server (cpp-httplib) in front of an Engine:
//   POST /v1/completions, POST /v1/chat/completions (JSON or SSE with "stream": true),
//   GET /v1/models, GET /health, GET /metrics (Prometheus).
// A streaming client that goes away cancels its request, which frees its KV pages.
#pragma once
#include <memory>
#include <string>

#include "atom/engine/engine.h"

namespace atom::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;             // 0 = any free port (see HttpServer::port())
  std::string model_name = "atom";
  int http_threads = 64;       // connections served at once (each stream holds one)
  size_t max_body_bytes = 8 << 20;
};

class HttpServer {
 public:
  // The engine must outlive the server.
  HttpServer(engine::Engine& engine, ServerOptions options);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int bind();     // binds host:port; returns the port (throws atom::Error when it cannot)
  void serve();   // answers requests until stop() (binds first if needed)
  void start();   // bind() + serve() on a background thread
  void stop();    // stops accepting, closes connections, joins the background thread
  int port() const;
  std::string url() const;  // http://host:port

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atom::server
