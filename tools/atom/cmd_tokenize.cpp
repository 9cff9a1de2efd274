// atom tokenize: text -> token ids with a model's tokenizer (and optionally back to text).
//
//   atom tokenize --model PATH (--text STR | --file FILE | --messages JSON_FILE)
//                 [--ids-only] [--no-special] [--add-bos | --no-bos] [--chat] [--decode]
//                 [--prompt-only] [--no-gen-prompt]
//
// stdout, line 1: the ids, space separated. Without --ids-only a second line gives the count
// and each token's text. --decode adds the decoded text. With --chat the input is a single
// user message (--text/--file) or a conversation (--messages: [{"role":..,"content":..},..]),
// formatted with the model's chat template; --prompt-only prints that formatted prompt
// verbatim instead of ids. BOS: added when the tokenizer config asks for it (not with --chat,
// whose template supplies it, as transformers' apply_chat_template does), or with --add-bos.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "atom/core/error.h"
#include "atom/tokenizer/tokenizer.h"
#include "commands.h"

namespace {

struct TokenizeArgs {
  std::string model, text, file, messages;
  bool ids_only = false, no_special = false, add_bos = false, no_bos = false, chat = false;
  bool decode = false, prompt_only = false, no_gen_prompt = false;
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  ATOM_CHECK(f.good(), "cannot read {} '{}'", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<atom::ChatMessage> parse_messages(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path, "--messages"));
  } catch (const nlohmann::json::exception& e) {
    atom::fail("--messages '{}': invalid JSON: {}", path, e.what());
  }
  ATOM_CHECK(j.is_array(), "--messages '{}': expected a JSON array of messages", path);
  std::vector<atom::ChatMessage> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& m = j[i];
    ATOM_CHECK(m.is_object() && m.contains("role") && m["role"].is_string() &&
                   m.contains("content") && m["content"].is_string(),
               "--messages '{}': message {} needs string fields 'role' and 'content'", path, i);
    out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  }
  return out;
}

// Printable form of a token's text for the human-readable line.
std::string show(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false,
                                                  nlohmann::json::error_handler_t::replace); }

void run_tokenize(const TokenizeArgs& a) {
  const int sources = !a.text.empty() + !a.file.empty() + !a.messages.empty();
  ATOM_CHECK(sources == 1, "give exactly one of --text, --file, --messages");
  auto tok = atom::load_tokenizer(a.model);
  const bool chat = a.chat || !a.messages.empty();
  std::string input = !a.file.empty() ? read_file(a.file, "--file") : a.text;
  if (chat) {
    std::vector<atom::ChatMessage> msgs =
        a.messages.empty() ? std::vector<atom::ChatMessage>{{"user", input}} : parse_messages(a.messages);
    input = tok->apply_chat_template(msgs, !a.no_gen_prompt);
  }
  if (a.prompt_only) {
    fmt::print("{}", input);
    return;
  }
  const bool bos = !a.no_bos && (a.add_bos || (!chat && tok->add_bos_default()));
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok->encode(input, bos, !a.no_special);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("{} bytes -> {} tokens in {:.1f} ms", input.size(), ids.size(), ms);
  fmt::print("{}\n", fmt::join(ids, " "));
  if (!a.ids_only) {
    std::string line = fmt::format("# {} tokens:", ids.size());
    for (int32_t id : ids) line += " " + show(tok->token_text(id));
    fmt::print("{}\n", line);
  }
  if (a.decode) fmt::print("{}\n", tok->decode(ids, /*skip_special=*/false));
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  a->model = atom::cli::default_model_path();
  CLI::App* c = app.add_subcommand("tokenize", "Print the token ids of a text");
  c->add_option("-m,--model", a->model, "Model directory (tokenizer.json / tokenizer.model) or .gguf")
      ->capture_default_str();
  c->add_option("--text", a->text, "Text to tokenize");
  c->add_option("--file", a->file, "Tokenize the whole content of this file");
  c->add_option("--messages", a->messages,
                "JSON file with a conversation [{\"role\",\"content\"},...] (implies --chat)");
  c->add_flag("--ids-only", a->ids_only, "Print only the ids line");
  c->add_flag("--no-special", a->no_special, "Treat special-token text literally");
  c->add_flag("--add-bos", a->add_bos, "Prepend BOS even if the tokenizer config does not");
  c->add_flag("--no-bos", a->no_bos, "Never prepend BOS");
  c->add_flag("--chat", a->chat, "Format the text as a user message with the chat template");
  c->add_flag("--no-gen-prompt", a->no_gen_prompt, "With --chat: do not open an assistant turn");
  c->add_flag("--prompt-only", a->prompt_only, "With --chat: print the formatted prompt, not ids");
  c->add_flag("--decode", a->decode, "Also print the ids decoded back to text");
  c->callback([a] { run_tokenize(*a); });
}
