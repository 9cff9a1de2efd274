// Each `atom` subcommand lives in its own cmd_*.cpp and registers itself on the CLI11 app.
#pragma once
#include <CLI/CLI.hpp>

#include <memory>
#include <string>

#include "atom/model/llama.h"
#include "atom/tokenizer/tokenizer.h"

namespace atom::cli {

void add_generate_command(CLI::App& app);
void add_ppl_command(CLI::App& app);
void add_logits_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_bench_command(CLI::App& app);  // `bench serve` (and later benchmarks)

// The model and its tokenizer from one path (HF directory, .gguf, or Atom checkpoint).
struct LoadedModel {
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
};
LoadedModel load_model_and_tokenizer(const std::string& path, bool verbose = true);

// The model the README uses when --model is not given (downloaded by scripts/setup.sh).
std::string default_model_path();

// Sets the OpenMP/OpenBLAS thread count (0 = all cores).
void set_threads(int n);

}  // namespace atom::cli

// Provided by the tokenizer module's CLI file.
void add_tokenize_command(CLI::App& app);
