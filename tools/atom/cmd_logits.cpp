// atom logits: dump the logits of every position of a prompt as a .npy (reference checks).
#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "atom/core/error.h"
#include "commands.h"

namespace atom::cli {

namespace {
struct LogitsArgs {
  std::string model, ids, prompt, out;
  int threads = 0;
};

// NumPy .npy v1.0: magic, header dict padded to a multiple of 64 bytes, raw little-endian data.
void write_npy_f32(const std::string& path, int64_t rows, int64_t cols, const std::vector<float>& v) {
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", rows, cols);
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  ATOM_CHECK(f.good(), "cannot write '{}'", path);
  const uint16_t hlen = uint16_t(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.write(reinterpret_cast<const char*>(&hlen), 2);
  f.write(header.data(), std::streamsize(header.size()));
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  ATOM_CHECK(f.good(), "write to '{}' failed", path);
}

void run_logits(const LogitsArgs& a) {
  set_threads(a.threads);
  LoadedModel lm = load_model_and_tokenizer(a.model, false);
  std::vector<int32_t> ids;
  if (!a.ids.empty()) {
    std::istringstream ss(a.ids);
    long long x;
    while (ss >> x) ids.push_back(int32_t(x));
    ATOM_CHECK(ss.eof(), "--ids must be integers separated by spaces");
  } else {
    ids = lm.tokenizer->encode(a.prompt, lm.tokenizer->add_bos_default());
  }
  ATOM_CHECK(!ids.empty(), "no tokens: give --ids or --prompt");
  const int64_t n = int64_t(ids.size()), H = lm.model->cfg.hidden_size, V = lm.model->cfg.vocab_size;
  KVCache cache(lm.model->cfg, n);
  std::vector<float> hidden(size_t(n * H)), logits(size_t(n * V));
  lm.model->forward(ids.data(), n, cache, hidden.data());
  lm.model->logits(hidden.data(), n, logits.data());
  write_npy_f32(a.out, n, V, logits);
  fmt::print("wrote logits [{}, {}] to {}\n", n, V, a.out);
}
}  // namespace

void add_logits_command(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  a->model = default_model_path();
  CLI::App* c = app.add_subcommand("logits", "Write the logits of every prompt position to a .npy file");
  c->add_option("-m,--model", a->model, "Model path")->capture_default_str();
  c->add_option("--ids", a->ids, "Token ids, space separated");
  c->add_option("-p,--prompt", a->prompt, "Prompt text (tokenized with the model's tokenizer)");
  c->add_option("-o,--out", a->out, "Output .npy path")->required();
  c->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->callback([a] { run_logits(*a); });
}

}  // namespace atom::cli
