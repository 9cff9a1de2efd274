// atom serve: the OpenAI-compatible HTTP server (see docs/engine.md). Ctrl-C / SIGTERM stops
// accepting requests, aborts the running ones and exits cleanly.
#include <spdlog/spdlog.h>

#include <semaphore.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <thread>

#include "atom/server/http_server.h"
#include "commands.h"
#include "engine_args.h"

namespace atom::cli {

namespace {
struct ServeArgs {
  std::string model, host = "127.0.0.1", served_model_name;
  int port = 8000, http_threads = 64;
  EngineArgs engine;
};

// SIGINT/SIGTERM post a semaphore (async-signal-safe); the main thread waits on it and then
// shuts down in ordinary code. Installed after loading, so Ctrl-C during a long load just exits.
sem_t g_stop;
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
  sem_post(&g_stop);
}

void run_serve(const ServeArgs& a) {
  std::string name = a.served_model_name;
  if (name.empty()) name = std::filesystem::path(a.model).filename().replace_extension().string();
  auto engine = make_engine(a.engine, load_model_and_tokenizer(a.model));
  server::HttpServer http(*engine, {.host = a.host, .port = a.port, .model_name = name, .http_threads = a.http_threads});
  http.start();
  sem_init(&g_stop, 0, 0);
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  spdlog::info("serving '{}' at {}/v1 (max model length {}); Ctrl-C to stop", name, http.url(),
               std::min(engine->max_model_len(), engine->kv_capacity_tokens()));
  spdlog::info("try: curl {}/v1/completions -H 'Content-Type: application/json' -d '{{\"prompt\": \"Hello\", "
               "\"max_tokens\": 16}}'",
               http.url());
  while (sem_wait(&g_stop) != 0 && errno == EINTR) {
  }
  spdlog::info("{}: shutting down", g_signal == SIGINT ? "SIGINT" : "SIGTERM");
  engine->shutdown();  // running requests end with an error event; new ones get 503
  http.stop();
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  const engine::EngineStats s = engine->stats();
  spdlog::info("served {} requests, {} tokens generated", s.finished_stop + s.finished_length + s.finished_abort,
               s.generated_tokens);
}
}  // namespace

void add_serve_command(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  a->model = default_model_path();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)");
  c->add_option("-m,--model", a->model, "HF model directory, .gguf file, or Atom checkpoint")->capture_default_str();
  c->add_option("--host", a->host, "Address to listen on")->capture_default_str();
  c->add_option("--port", a->port, "Port (0 = any free port)")->capture_default_str()->check(CLI::Range(0, 65535));
  c->add_option("--served-model-name", a->served_model_name, "Model name in the API (default: the file name)");
  c->add_option("--http-threads", a->http_threads, "Connections served at once (each stream holds one)")
      ->capture_default_str()->check(CLI::Range(2, 4096));
  add_engine_options(c, a->engine);
  c->callback([a] { run_serve(*a); });
}

}  // namespace atom::cli
