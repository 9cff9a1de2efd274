// The OpenAI-compatible server on loopback, driven by a real HTTP client (cpp-httplib): both
// endpoints streaming and not, /v1/models, /health, /metrics, 4xx errors, a full queue, and a
// streaming client that disconnects (its request is cancelled and its pages freed).
#include <gtest/gtest.h>
#include <httplib.h>

#include <condition_variable>
#include <thread>
#include <nlohmann/json.hpp>

#include "atom/model/generate.h"
#include "atom/server/http_server.h"
#include "engine_test_util.h"
#include "test_util.h"

namespace atom::server {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using test::fresh_seed;
using test::tiny_tokenizer;

// Forwards to the CPU executor, but can be limited to a number of further steps: a step
// beyond them waits until open() (so a test can act between two iterations without timing).
class GateExecutor final : public engine::Executor {
 public:
  explicit GateExecutor(std::unique_ptr<engine::Executor> inner) : inner_(std::move(inner)) {}
  const ModelConfig& config() const override { return inner_->config(); }
  int64_t page_size() const override { return inner_->page_size(); }
  int64_t num_pages() const override { return inner_->num_pages(); }
  void release(int64_t id) override { inner_->release(id); }
  std::string name() const override { return "gated " + inner_->name(); }
  void step(const std::vector<engine::SeqStep>& batch, float* logits) override {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return permits_ != 0; });
      if (permits_ > 0) --permits_;
    }
    inner_->step(batch, logits);
  }
  void allow_steps(int64_t n) {
    std::lock_guard lk(mu_);
    permits_ = n;
  }
  void open() {
    {
      std::lock_guard lk(mu_);
      permits_ = -1;
    }
    cv_.notify_all();
  }

 private:
  std::unique_ptr<engine::Executor> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t permits_ = -1;  // -1: unlimited
};

struct Sse {
  std::vector<json> chunks;
  bool done = false;  // "data: [DONE]" came last
};

Sse parse_sse(const std::string& body) {
  Sse out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t end = body.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << "unterminated SSE event";
    if (end == std::string::npos) break;
    const std::string ev = body.substr(at, end - at);
    at = end + 2;
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    EXPECT_FALSE(out.done) << "data after [DONE]";
    if (ev == "data: [DONE]") {
      out.done = true;
      continue;
    }
    out.chunks.push_back(json::parse(ev.substr(6)));
  }
  return out;
}

class ServerTest : public ::testing::Test {
 protected:
  void boot(const test::EngineSetup& setup = {}) {
    seed_ = fresh_seed();
    model_ = test::tiny_model(seed_);
    engine::EngineOptions o;
    o.scheduler.max_num_seqs = setup.max_num_seqs;
    o.scheduler.max_num_batched_tokens = setup.max_num_batched_tokens;
    o.max_queue = setup.max_queue;
    o.autostart = setup.autostart;
    auto gate = std::make_unique<GateExecutor>(
        std::make_unique<engine::CpuExecutor>(model_, setup.page_size, setup.num_pages));
    gate_ = gate.get();
    engine_ = std::make_unique<engine::Engine>(std::move(gate), tiny_tokenizer(), o);
    server_ = std::make_unique<HttpServer>(*engine_, ServerOptions{.host = "127.0.0.1", .port = 0,
                                                                   .model_name = "tiny", .http_threads = 8});
    server_->start();
    ASSERT_GT(server_->port(), 0);
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(30, 0);
  }
  void TearDown() override {
    if (gate_) gate_->open();
    if (engine_) engine_->shutdown();  // ends any stream still open, then the server can stop
    server_.reset();
    engine_.reset();
  }

  httplib::Result post(const std::string& path, const json& body) { return post_raw(path, body.dump()); }
  httplib::Result post_raw(const std::string& path, const std::string& body) {
    return client_->Post(path.c_str(), body, "application/json");
  }
  // Expects an OpenAI error response with this status (and, when given, param / code).
  void expect_error(const std::string& path, const std::string& body, int status, const std::string& param = "",
                    const std::string& code = "") {
    SCOPED_TRACE(body);
    auto res = post_raw(path, body);
    ASSERT_TRUE(res) << "no response";
    EXPECT_EQ(res->status, status) << res->body;
    const json j = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << res->body;
    const json& e = j["error"];
    for (const char* k : {"message", "type", "param", "code"}) EXPECT_TRUE(e.contains(k)) << k;
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    if (!param.empty()) EXPECT_EQ(e["param"], param);
    if (!code.empty()) EXPECT_EQ(e["code"], code);
  }
  // What the engine's own single-request generation gives for these ids.
  GenerateResult reference(const std::vector<int32_t>& ids, int max_tokens, std::vector<std::string> stop = {}) {
    GenerateOptions o;
    o.max_tokens = max_tokens;
    o.stop_at_eos = false;
    o.stop_strings = std::move(stop);
    return generate(*model_, *tiny_tokenizer(), ids, o);
  }

  uint64_t seed_ = 0;
  std::shared_ptr<const LlamaModel> model_;
  GateExecutor* gate_ = nullptr;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

const std::string kPrompt = "the weather in Paris is";

TEST_F(ServerTest, CompletionMatchesSingleRequestGeneration) {
  boot();
  SCOPED_TRACE(seed_);
  auto res = post("/v1/completions", {{"model", "tiny"}, {"prompt", kPrompt}, {"max_tokens", 12},
                                      {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_NE(res->get_header_value("Content-Type").find("application/json"), std::string::npos);
  const json j = json::parse(res->body);
  const auto ids = tiny_tokenizer()->encode(kPrompt);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_TRUE(j["created"].is_number_integer());
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["text"], reference(ids, 12).text);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 12);
  EXPECT_EQ(j["usage"]["total_tokens"], ids.size() + 12);

  // The same prompt as token ids, and as a list of one string / one id list.
  for (const json& prompt : {json(ids), json::array({kPrompt}), json::array({json(ids)})}) {
    auto r2 = post("/v1/completions", {{"prompt", prompt}, {"max_tokens", 12}, {"temperature", 0},
                                       {"ignore_eos", true}});
    ASSERT_TRUE(r2);
    ASSERT_EQ(r2->status, 200) << r2->body;
    EXPECT_EQ(json::parse(r2->body)["choices"][0]["text"], j["choices"][0]["text"]) << prompt.dump();
  }
}

TEST_F(ServerTest, ChatCompletionUsesTheChatTemplate) {
  boot();
  SCOPED_TRACE(seed_);
  const json messages = {{{"role", "system"}, {"content", "be brief"}}, {{"role", "user"}, {"content", "hi there"}}};
  auto res = post("/v1/chat/completions", {{"messages", messages}, {"max_completion_tokens", 9},
                                           {"temperature", 0}, {"ignore_eos", true}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json j = json::parse(res->body);
  const Tokenizer& tok = *tiny_tokenizer();
  const auto ids = tok.encode(tok.apply_chat_template({{"system", "be brief"}, {"user", "hi there"}}, true));
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], reference(ids, 9).text);
  EXPECT_EQ(j["usage"]["prompt_tokens"], ids.size());
  EXPECT_EQ(j["usage"]["completion_tokens"], 9);
}

TEST_F(ServerTest, StreamingSendsDeltasThenFinishUsageAndDone) {
  boot();
  SCOPED_TRACE(seed_);
  const auto ids = tiny_tokenizer()->encode(kPrompt);
  const std::string expected = reference(ids, 20).text;
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    SCOPED_TRACE(path);
    const bool chat = std::string(path) == "/v1/chat/completions";
    json body = {{"max_tokens", 20}, {"temperature", 0}, {"ignore_eos", true}, {"stream", true},
                 {"stream_options", {{"include_usage", true}}}};
    if (chat)
      body["messages"] = {{{"role", "user"}, {"content", kPrompt}}};
    else
      body["prompt"] = kPrompt;
    auto res = post(path, body);
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_NE(res->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
    const Sse sse = parse_sse(res->body);
    EXPECT_TRUE(sse.done);
    ASSERT_GE(sse.chunks.size(), 3u);
    std::string text;
    std::string finish;
    for (size_t i = 0; i + 1 < sse.chunks.size(); ++i) {
      const json& c = sse.chunks[i];
      EXPECT_EQ(c["object"], chat ? "chat.completion.chunk" : "text_completion");
      EXPECT_EQ(c["id"], sse.chunks[0]["id"]);
      const json& choice = c["choices"][0];
      if (chat) {
        if (i == 0) EXPECT_EQ(choice["delta"]["role"], "assistant");
        text += choice["delta"].value("content", "");
      } else {
        text += choice["text"].get<std::string>();
      }
      if (!choice["finish_reason"].is_null()) {
        EXPECT_EQ(i + 2, sse.chunks.size()) << "finish_reason before the end";
        finish = choice["finish_reason"];
      }
    }
    EXPECT_EQ(finish, "length");
    const json& usage = sse.chunks.back();
    EXPECT_TRUE(usage["choices"].empty());
    EXPECT_EQ(usage["usage"]["completion_tokens"], 20);
    if (!chat) EXPECT_EQ(text, expected);
    else EXPECT_FALSE(text.empty());
  }
}

TEST_F(ServerTest, StopStringsAndSeededSampling) {
  boot();
  SCOPED_TRACE(seed_);
  const auto ids = tiny_tokenizer()->encode(kPrompt);
  const std::string full = reference(ids, 30).text;
  // A stop string from the second half of the text, two printable ASCII bytes (valid JSON).
  size_t at = full.size() / 2;
  while (at + 1 < full.size() && !(std::isprint((unsigned char)full[at]) && std::isprint((unsigned char)full[at + 1])))
    ++at;
  if (at + 1 < full.size()) {
    const std::string stop = full.substr(at, 2);
    auto res = post("/v1/completions", {{"prompt", kPrompt}, {"max_tokens", 30}, {"temperature", 0},
                                        {"ignore_eos", true}, {"stop", stop}});
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_EQ(j["choices"][0]["text"], full.substr(0, full.find(stop)));
    EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  }
  const json sampled = {{"prompt", kPrompt}, {"max_tokens", 16}, {"temperature", 0.9}, {"top_p", 0.9},
                        {"top_k", 40}, {"seed", 1234}, {"ignore_eos", true}};
  auto a = post("/v1/completions", sampled), b = post("/v1/completions", sampled);
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(json::parse(a->body)["choices"][0]["text"], json::parse(b->body)["choices"][0]["text"]);
}

TEST_F(ServerTest, ModelsHealthAndMetrics) {
  boot();
  auto models = client_->Get("/v1/models");
  ASSERT_TRUE(models);
  ASSERT_EQ(models->status, 200);
  const json m = json::parse(models->body);
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "tiny");
  EXPECT_EQ(m["data"][0]["object"], "model");

  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);

  auto res = post("/v1/completions", {{"prompt", kPrompt}, {"max_tokens", 5}, {"ignore_eos", true}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  ASSERT_TRUE(engine_->wait_idle(10s));
  auto metrics = client_->Get("/metrics");
  ASSERT_TRUE(metrics);
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& t = metrics->body;
  for (const char* needle :
       {"# TYPE atom_num_requests_waiting gauge", "atom_num_requests_running{model_name=\"tiny\"} 0",
        "atom_kv_cache_pages_used{model_name=\"tiny\"} 0", "atom_kv_cache_pages_total{model_name=\"tiny\"} 256",
        "atom_generation_tokens_total{model_name=\"tiny\"} 5", "# TYPE atom_time_to_first_token_seconds histogram",
        "atom_time_to_first_token_seconds_bucket{model_name=\"tiny\",le=\"+Inf\"} 1",
        "atom_time_per_output_token_seconds_count{model_name=\"tiny\"} 1",
        "atom_request_success_total{model_name=\"tiny\",finished_reason=\"length\"} 1"})
    EXPECT_NE(t.find(needle), std::string::npos) << "missing: " << needle << "\n" << t;
}

TEST_F(ServerTest, MalformedRequestsGetOpenAIErrors) {
  boot();
  const std::string c = "/v1/completions", chat = "/v1/chat/completions";
  expect_error(c, "{not json", 400, "", "invalid_json");
  expect_error(c, "[1, 2]", 400, "", "invalid_type");
  expect_error(c, R"({"max_tokens": 4})", 400, "prompt", "missing_required_parameter");
  expect_error(c, R"({"prompt": 5})", 400, "prompt", "invalid_type");
  expect_error(c, R"({"prompt": []})", 400, "prompt");
  expect_error(c, R"({"prompt": ["a", "b"]})", 400, "prompt");
  expect_error(c, R"({"prompt": [1, -2]})", 400, "prompt");
  expect_error(c, R"({"prompt": [1, 99999]})", 400);  // out of the vocabulary
  expect_error(c, R"({"prompt": "x", "temperature": "hot"})", 400, "temperature", "invalid_type");
  expect_error(c, R"({"prompt": "x", "temperature": 2.5})", 400, "temperature");
  expect_error(c, R"({"prompt": "x", "top_p": 0})", 400, "top_p");
  expect_error(c, R"({"prompt": "x", "top_k": -5})", 400, "top_k");
  expect_error(c, R"({"prompt": "x", "max_tokens": 0})", 400, "max_tokens");
  expect_error(c, R"({"prompt": "x", "max_tokens": 1.5})", 400, "max_tokens", "invalid_type");
  expect_error(c, R"({"prompt": "x", "max_tokens": 100000})", 400, "max_tokens", "context_length_exceeded");
  expect_error(c, R"({"prompt": "x", "n": 2})", 400, "n");
  expect_error(c, R"({"prompt": "x", "logprobs": 1})", 400, "logprobs");
  expect_error(c, R"({"prompt": "x", "echo": true})", 400, "echo");
  expect_error(c, R"({"prompt": "x", "stop": [1]})", 400, "stop", "invalid_type");
  expect_error(c, R"({"prompt": "x", "stop": ""})", 400, "stop");
  expect_error(c, R"({"prompt": "x", "stream": "yes"})", 400, "stream", "invalid_type");
  expect_error(c, R"({"prompt": "x", "seed": "s"})", 400, "seed", "invalid_type");
  expect_error(c, R"({"prompt": "x", "presence_penalty": 1})", 400, "presence_penalty");
  expect_error(c, R"({"prompt": "x", "model": "gpt-4"})", 404, "model", "model_not_found");
  expect_error(c, json{{"prompt", std::string(600, 'x')}}.dump(), 400, "prompt", "context_length_exceeded");
  expect_error(chat, R"({"messages": []})", 400, "messages");
  expect_error(chat, R"({"messages": "hi"})", 400, "messages", "invalid_type");
  expect_error(chat, R"({"messages": [{"content": "hi"}]})", 400, "messages");
  expect_error(chat, R"({"messages": [{"role": "wizard", "content": "hi"}]})", 400, "messages");
  expect_error(chat, R"({"messages": [{"role": "user", "content": 7}]})", 400, "messages");
  expect_error(chat, R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true})", 400, "logprobs");
  expect_error("/v1/nothing", "{}", 404);
  auto get = client_->Get("/nowhere");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 404);
  EXPECT_TRUE(json::parse(get->body, nullptr, false).contains("error"));
  // The server still answers after all that.
  auto ok = post(c, {{"prompt", "x"}, {"max_tokens", 2}, {"ignore_eos", true}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  // logprobs: false and n: 1 are fine
  ok = post(chat, {{"messages", {{{"role", "user"}, {"content", "x"}}}}, {"max_tokens", 2}, {"logprobs", false},
                   {"n", 1}, {"ignore_eos", true}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(ServerTest, FullQueueAnswers429AndShutdownAnswers503) {
  boot({.max_queue = 1, .autostart = false});
  engine::Request r;
  r.prompt = {65, 66};
  r.max_tokens = 2;
  engine::RequestHandle queued = engine_->submit(r);  // fills the queue: the loop is not running
  expect_error("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", 429, "", "queue_full");
  engine_->start();
  EXPECT_EQ(queued->wait().usage.completion_tokens >= 0, true);
  ASSERT_TRUE(engine_->wait_idle(10s));
  auto ok = post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  engine_->shutdown();
  expect_error("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", 503, "", "shutting_down");
  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
}

TEST_F(ServerTest, ClientThatDisconnectsMidStreamIsCancelledAndFreesItsPages) {
  boot();
  SCOPED_TRACE(seed_);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = {{"Content-Type", "application/json"}};
  req.body = json{{"prompt", kPrompt}, {"max_tokens", 400}, {"temperature", 0}, {"ignore_eos", true},
                  {"stream", true}}.dump();
  std::string received;
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    received.append(data, n);
    return received.find("\n\n") == std::string::npos;  // hang up after the first event
  };
  gate_->allow_steps(3);  // the prefill and two decodes, then the engine waits for the test
  auto res = client_->send(req);
  EXPECT_FALSE(res) << "the client aborted the transfer";
  EXPECT_EQ(received.rfind("data: ", 0), 0u);
  gate_->open();  // the engine produces more tokens; writing them fails, the request is cancelled
  ASSERT_TRUE(engine_->wait_idle(20s)) << "the request was not cancelled";
  const engine::EngineStats s = engine_->stats();
  EXPECT_EQ(s.finished_abort, 1);
  EXPECT_EQ(s.finished_length, 0) << "the request ran to the end instead of being cancelled";
  EXPECT_LT(s.generated_tokens, 400);
  EXPECT_EQ(s.kv_pages_used, 0);
  EXPECT_EQ(s.waiting + s.running, 0);
}

TEST_F(ServerTest, ConcurrentStreamsWithDisconnectsLeakNothingAndMatchGreedy) {
  // A small pool forces preemption; every fourth client hangs up after its first event.
  boot({.page_size = 4, .num_pages = 96, .max_num_seqs = 8, .max_num_batched_tokens = 32, .max_queue = 64});
  SCOPED_TRACE(seed_);
  std::mt19937_64 rng(seed_);
  constexpr int kClients = 24;
  struct Job {
    std::vector<int32_t> prompt;
    int max_tokens = 0;
    bool hang_up = false;
    std::string text, finish, transport_error;
    bool transport_ok = false;
  };
  std::vector<Job> jobs(kClients);
  for (int i = 0; i < kClients; ++i) {
    jobs[size_t(i)].prompt = test::random_prompt(rng, 1 + rng() % 40);
    jobs[size_t(i)].hang_up = i % 4 == 3;
    jobs[size_t(i)].max_tokens = jobs[size_t(i)].hang_up ? 300 : 8 + int(rng() % 40);
  }
  std::vector<std::thread> threads;
  for (Job& job : jobs)
    threads.emplace_back([&, port = server_->port()] {
      httplib::Client cli("127.0.0.1", port);
      cli.set_read_timeout(60, 0);
      httplib::Request req;
      req.method = "POST";
      req.path = "/v1/completions";
      req.headers = {{"Content-Type", "application/json"}};
      req.body = json{{"prompt", job.prompt}, {"max_tokens", job.max_tokens}, {"temperature", 0},
                      {"ignore_eos", true}, {"stream", true}}.dump();
      std::string body;
      req.content_receiver = [&](const char* d, size_t n, uint64_t, uint64_t) {
        body.append(d, n);
        return !(job.hang_up && body.find("\n\n") != std::string::npos);
      };
      const httplib::Result res = cli.send(req);
      job.transport_ok = bool(res);
      if (!job.transport_ok) {
        job.transport_error = httplib::to_string(res.error()) + " after " + std::to_string(body.size()) + " bytes";
        return;
      }
      const Sse sse = parse_sse(body);
      for (const json& c : sse.chunks) {
        if (c.contains("error")) job.finish = "error";
        if (!c.contains("choices") || c["choices"].empty()) continue;
        job.text += c["choices"][0]["text"].get<std::string>();
        if (!c["choices"][0]["finish_reason"].is_null()) job.finish = c["choices"][0]["finish_reason"];
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_TRUE(engine_->wait_idle(30s));
  const engine::EngineStats s = engine_->stats();
  EXPECT_EQ(s.kv_pages_used, 0) << "leaked pages";
  EXPECT_EQ(engine_->executor().name(), "gated cpu-fp32");
  int completed = 0;
  for (const Job& job : jobs) {
    if (job.hang_up) {
      EXPECT_FALSE(job.transport_ok) << "the client hung up";
      continue;
    }
    ASSERT_TRUE(job.transport_ok) << job.transport_error << "; aborted " << s.finished_abort << " finished " << s.finished_length;
    EXPECT_EQ(job.finish, "length");
    EXPECT_EQ(job.text, reference(job.prompt, job.max_tokens).text) << "prompt of " << job.prompt.size();
    ++completed;
  }
  EXPECT_EQ(completed, kClients - kClients / 4);
  EXPECT_EQ(s.finished_length + s.finished_abort, kClients);
  EXPECT_GE(s.finished_length, completed);
  EXPECT_GT(s.largest_batch, 1);
}

}  // namespace
}  // namespace atom::server
