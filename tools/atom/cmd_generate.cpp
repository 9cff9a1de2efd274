// atom generate: stream a completion (or a chat reply with --chat) and report tokens/s.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <algorithm>
#include <chrono>

#include "atom/core/error.h"
#include "atom/engine/engine.h"
#include "atom/model/generate.h"
#include "commands.h"
#include "engine_args.h"

namespace atom::cli {

namespace {
struct GenerateArgs {
  std::string model, prompt, prompt_file, system, device = "cpu";
  bool chat = false, quiet = false;
  int max_tokens = 128, threads = 0, top_k = 0;
  float temperature = 0.0f, top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
};

// Another device (--device cuda): one request through the serving engine on that device's executor, so the
// GPU path (CUDA graphs, sampling on the GPU) is the one `atom serve` uses. The CPU path below stays the
// reference implementation (model/generate.h).
void generate_on_engine(const GenerateArgs& a, LoadedModel lm, const std::vector<int32_t>& ids,
                        const std::string& prompt) {
  const int64_t context = lm.model->cfg.max_position_embeddings;
  ATOM_CHECK(int64_t(ids.size()) + a.max_tokens <= context, "prompt ({} tokens) + --max-tokens {} exceed the context {}",
             ids.size(), a.max_tokens, context);
  EngineArgs ea;  // the serve / bench serve path, for one sequence
  ea.device = a.device;
  ea.max_num_seqs = 1;
  ea.max_num_batched_tokens = 1024;
  ea.max_model_len = int64_t(ids.size()) + std::max(a.max_tokens, 1);
  ea.threads = a.threads;
  const std::unique_ptr<engine::Engine> eng = make_engine(ea, std::move(lm));
  engine::Request req;
  req.prompt = ids;
  req.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  req.max_tokens = std::max(a.max_tokens, 1);
  req.stop = a.stop;
  if (!a.chat) fmt::print("{}", prompt);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  engine::RequestHandle h = eng->submit(std::move(req));
  engine::RequestEvent ev;
  int64_t generated = 0;
  do {
    ev = h->next();
    fmt::print("{}", ev.text);
    std::fflush(stdout);
    generated += int64_t(ev.tokens.size());
  } while (!ev.finished);
  fmt::print("\n");
  ATOM_CHECK(ev.error.empty(), "generation failed: {}", ev.error);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("{}: prompt {} tokens, TTFT {:.1f} ms; generated {} tokens, TPOT {:.2f} ms ({:.1f} tok/s); {:.2f}s; "
               "finish: {}",
               eng->executor().name(), ids.size(), 1e3 * ev.ttft_s, generated, 1e3 * ev.tpot_s,
               ev.tpot_s > 0 ? 1.0 / ev.tpot_s : 0.0, secs, engine::to_string(ev.finish_reason));
}

void run_generate(const GenerateArgs& a) {
  set_threads(a.threads);
  std::string prompt = a.prompt;
  if (!a.prompt_file.empty()) {
    std::ifstream f(a.prompt_file);
    ATOM_CHECK(f.good(), "cannot read --prompt-file '{}'", a.prompt_file);
    std::stringstream ss;
    ss << f.rdbuf();
    prompt = ss.str();
  }
  ATOM_CHECK(!prompt.empty(), "give a prompt with --prompt or --prompt-file");
  LoadedModel lm = load_model_and_tokenizer(a.model, !a.quiet);
  const Tokenizer& tok = *lm.tokenizer;
  if (a.chat) {
    std::vector<ChatMessage> msgs;
    if (!a.system.empty()) msgs.push_back({"system", a.system});
    msgs.push_back({"user", prompt});
    prompt = tok.apply_chat_template(msgs, true);
  }
  const std::vector<int32_t> ids = tok.encode(prompt, tok.add_bos_default());
  if (a.device != "cpu") return generate_on_engine(a, std::move(lm), ids, prompt);
  GenerateOptions opt;
  opt.max_tokens = a.max_tokens;
  opt.sampling = {a.temperature, a.top_k, a.top_p, a.seed};
  opt.stop_strings = a.stop;
  if (!a.chat) fmt::print("{}", prompt);
  std::fflush(stdout);
  GenerateResult r = generate(*lm.model, tok, ids, opt, [](const std::string& piece) {
    fmt::print("{}", piece);
    std::fflush(stdout);
    return true;
  });
  fmt::print("\n");
  const double prefill_tps = double(r.prompt_tokens) / std::max(r.prefill_seconds, 1e-9);
  const double decode_tps = double(r.tokens.size()) / std::max(r.decode_seconds, 1e-9);
  spdlog::info("prompt {} tokens in {:.2f}s ({:.1f} tok/s); generated {} tokens in {:.2f}s ({:.1f} tok/s); "
               "finish: {}",
               r.prompt_tokens, r.prefill_seconds, prefill_tps, r.tokens.size(), r.decode_seconds, decode_tps,
               r.finish_reason);
}
}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  a->model = default_model_path();
  CLI::App* c = app.add_subcommand("generate", "Generate text from a prompt (streams tokens, prints tokens/s)");
  c->add_option("-m,--model", a->model, "HF model directory, .gguf file, or Atom checkpoint")->capture_default_str();
  c->add_option("-p,--prompt", a->prompt, "Prompt text");
  c->add_option("-f,--prompt-file", a->prompt_file, "Read the prompt from a file");
  c->add_flag("--chat", a->chat, "Wrap the prompt in the model's chat template as a user turn");
  c->add_option("--system", a->system, "System message (with --chat)");
  c->add_option("-n,--max-tokens", a->max_tokens, "Tokens to generate")->capture_default_str()->check(CLI::Range(0, 1 << 20));
  c->add_option("--temperature", a->temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  c->add_option("--top-k", a->top_k, "Top-k (0 = off)")->capture_default_str();
  c->add_option("--top-p", a->top_p, "Top-p nucleus (1 = off)")->capture_default_str();
  c->add_option("--seed", a->seed, "Sampling seed")->capture_default_str();
  c->add_option("--stop", a->stop, "Stop string (repeatable)");
  c->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  std::string devices;
  for (const std::string& d : engine::registered_devices()) devices += (devices.empty() ? "" : ", ") + d;
  c->add_option("--device", a->device,
                "Backend (this build: " + devices + "); cpu runs the reference loop, others the serving engine")
      ->capture_default_str();
  c->add_flag("-q,--quiet", a->quiet, "Only print the text");
  c->callback([a] { run_generate(*a); });
}

}  // namespace atom::cli
