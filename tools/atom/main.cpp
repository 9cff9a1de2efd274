// atom — quantize, evaluate, generate with and serve Llama-family models (Atom W4A4 on Hopper).
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "atom/core/error.h"
#include "commands.h"
#ifdef ATOM_WITH_CUDA
#include "atom/backend/cuda/cuda_executor.h"
#endif

int main(int argc, char** argv) {
  // Logs go to stderr so stdout carries only results (generated text, token ids, JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt("atom"));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");

#ifdef ATOM_WITH_CUDA
  atom::cuda::register_cuda_executor();  // --device cuda for serve / bench serve
#endif
  CLI::App app{"atom: W4A4 (Atom) quantization and serving of Llama-family models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "atom 0.1.0");
  atom::cli::add_quantize_command(app);
  atom::cli::add_ppl_command(app);
  atom::cli::add_generate_command(app);
  atom::cli::add_logits_command(app);
  atom::cli::add_serve_command(app);
  atom::cli::add_bench_command(app);
  add_tokenize_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const atom::Error& e) {
    spdlog::error("{}", e.what());
    return 1;
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", e.what());
    return 2;
  }
  return 0;
}
