#include <cblas.h>
#include <omp.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>

#include "atom/core/error.h"
#include "atom/io/gguf.h"
#include "atom/model/loader.h"
#include "atom/quant/checkpoint.h"
#include "commands.h"

namespace atom::cli {

std::string default_model_path() {
  if (const char* env = std::getenv("ATOM_MODEL")) return env;
  // Relative to the repository root (where the README's commands run) or the build dir.
  for (const char* p : {"models/SmolLM2-135M-Instruct.Q4_1.gguf", "../models/SmolLM2-135M-Instruct.Q4_1.gguf"})
    if (std::filesystem::exists(p)) return p;
  return "models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

LoadedModel load_model_and_tokenizer(const std::string& path, bool verbose) {
  auto t0 = std::chrono::steady_clock::now();
  LoadedModel lm;
  if (detect_model_format(path) == ModelFormat::AtomCheckpoint) {
    lm.model = quant::load_checkpoint(path).model;
    const auto gguf_tok = std::filesystem::path(path) / "tokenizer.gguf";
    lm.tokenizer = std::filesystem::exists(gguf_tok) ? load_tokenizer_gguf(io::GgufFile(gguf_tok.string()))
                                                     : load_tokenizer(path);
  } else {
    lm.model = load_llama(path);
    lm.tokenizer = load_tokenizer(path);
  }
  if (verbose) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("loaded {} in {:.2f}s: {}", path, s, lm.model->cfg.summary());
    spdlog::info("{:.1f}M parameters, weights {}", double(lm.model->num_parameters()) / 1e6,
                 lm.model->weights_note);
  }
  return lm;
}

void set_threads(int n) {
  if (n <= 0) return;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}

}  // namespace atom::cli
