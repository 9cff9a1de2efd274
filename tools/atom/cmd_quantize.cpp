// atom quantize: calibrate + quantize a model (Atom W4A4+O128, RTN W4A4, or W8A8 SmoothQuant)
// and write an Atom checkpoint.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <sstream>

#include "atom/core/error.h"
#include "atom/core/progress.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/checkpoint.h"
#include "atom/quant/quant_backend.h"
#include "commands.h"
#ifdef ATOM_WITH_CUDA
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/quant_backend_gpu.h"
#endif

namespace atom::cli {

namespace {
struct QuantizeArgs {
  std::string model, out, calib = "../shared/data/wikitext2-valid-tokenized.txt", method = "atom";
  std::string w_clip;  // a ratio or "search"
  std::string device = "auto";
  int outliers = 128, group = 128, outlier_bits = 8, a_bits = 4, kv_bits = 4, samples = 128, seqlen = 2048, threads = 0, tp_segments = 1;
  float a_clip = 0.9f;
  bool gptq_on = false, gptq_off = false, kv_pre_rope = false, calib_tf32 = false;
  uint64_t seed = 0;
  CLI::App* cmd = nullptr;
};

bool given(const QuantizeArgs& a, const char* opt) { return a.cmd->count(opt) > 0; }

quant::QuantConfig make_config(const QuantizeArgs& a) {
  quant::QuantConfig c;
  ATOM_CHECK(a.method == "atom" || a.method == "rtn" || a.method == "w8a8",
             "--method must be atom, rtn or w8a8 (got '{}')", a.method);
  c.method = a.method == "w8a8" ? "w8a8" : "atom";
  // Method defaults; any option given on the command line wins.
  if (a.method == "rtn") {  // the paper's baseline: per-token x per-channel W4A4, nothing else
    c.atom.n_outlier = 0;
    c.atom.group = 0;
    c.atom.w_clip = 1.0f;
    c.atom.a_clip = 1.0f;
    c.gptq = false;
    c.kv_bits = 16;
  }
  if (a.method == "w8a8") {
    c.gptq = false;
    c.kv_bits = 8;
  }
  if (given(a, "--outliers")) c.atom.n_outlier = a.outliers;
  if (given(a, "--group")) c.atom.group = a.group;
  if (given(a, "--a-clip")) c.atom.a_clip = a.a_clip;
  if (given(a, "--outlier-bits")) c.atom.outlier_bits = a.outlier_bits;
  if (given(a, "--a-bits")) c.atom.a_bits = a.a_bits;
  if (given(a, "--kv-bits")) c.kv_bits = a.kv_bits;
  ATOM_CHECK(!(a.gptq_on && a.gptq_off), "--gptq and --no-gptq contradict each other");
  if (a.gptq_on) c.gptq = true;
  if (a.gptq_off) c.gptq = false;
  if (!a.w_clip.empty()) {
    if (a.w_clip == "search") {
      c.w_clip_search = true;
    } else {
      try {
        size_t used = 0;
        c.atom.w_clip = std::stof(a.w_clip, &used);
        ATOM_CHECK(used == a.w_clip.size(), "bad --w-clip");
      } catch (const std::exception&) {
        fail("--w-clip must be a ratio in (0, 1] or 'search', got '{}'", a.w_clip);
      }
    }
  }
  ATOM_CHECK(!(c.w_clip_search && c.gptq), "--w-clip search applies to RTN; add --no-gptq (GPTQ uses --w-clip R)");
  c.kv_pre_rope = a.kv_pre_rope;
  c.tp_segments = a.tp_segments;
  c.samples = a.samples;
  c.seqlen = a.seqlen;
  c.seed = a.seed;
  c.calib_file = a.calib;
  c.validate();
  return c;
}

// --device: auto = cuda when this build has CUDA and a GPU is visible, else cpu.
std::unique_ptr<quant::QuantBackend> make_backend(const std::string& device, bool calib_tf32) {
  ATOM_CHECK(device == "auto" || device == "cpu" || device == "cuda", "--device must be auto, cpu or cuda (got '{}')",
             device);
#ifdef ATOM_WITH_CUDA
  if (device == "cuda" || (device == "auto" && cuda::device_count() > 0))
    return cuda::make_gpu_quant_backend(0, calib_tf32);
#else
  ATOM_CHECK(device != "cuda", "--device cuda: this build has no CUDA backend (configure with -DATOM_CUDA=ON)");
#endif
  ATOM_CHECK(!calib_tf32, "--calib-tf32 applies to the GPU backend only (this run calibrates on the CPU)");
  return quant::make_cpu_quant_backend();
}

void run_quantize(const QuantizeArgs& a) {
  set_threads(a.threads);
  const quant::QuantConfig cfg = make_config(a);
  std::ifstream f(a.calib, std::ios::binary);
  ATOM_CHECK(f.good(), "cannot read --calib '{}'", a.calib);
  std::stringstream ss;
  ss << f.rdbuf();
  LoadedModel lm = load_model_and_tokenizer(a.model);
  ATOM_CHECK(lm.model->weights_note.rfind("Atom checkpoint", 0) != 0,
             "--model '{}' is already quantized; quantize the original model", a.model);
  const auto tokens = lm.tokenizer->encode(ss.str(), false, false);
  const auto windows = quant::sample_windows(tokens, cfg.samples, cfg.seqlen, cfg.seed);
  spdlog::info("calibration: {} windows x {} tokens from {} ({} tokens), seed {}", cfg.samples, cfg.seqlen, a.calib,
               tokens.size(), cfg.seed);
  spdlog::info("quantizing: {}", cfg.to_json().dump());
  const std::unique_ptr<quant::QuantBackend> backend = make_backend(a.device, a.calib_tf32);
  spdlog::info("calibration and GPTQ on: {}", backend->name());
  const int layers = lm.model->cfg.num_layers;
  ProgressBar bar("quantize", layers);
  quant::QuantizeReport rep =
      quant::quantize_model(*lm.model, windows, cfg, [&](int done, int) { bar.update(done); }, backend.get());
  bar.finish();
  std::string stages;
  for (const auto& [k, v] : rep.stage_seconds) stages += fmt::format(" {} {:.1f}s", k, v);
  spdlog::info("stages ({}):{}", rep.backend, stages);
  // Per-layer relative output errors (also stored in the checkpoint's metadata).
  for (int l = 0; l < layers; ++l) {
    std::string line = fmt::format("layer {:2d}:", l);
    for (const auto& r : rep.linears)
      if (r.layer == l) line += fmt::format(" {} {:.4f}", r.linear.substr(0, r.linear.find('_')), r.rel_error);
    spdlog::info("{}", line);
  }
  quant::save_checkpoint(a.out, *lm.model, cfg, rep, a.model);
  fmt::print("quantized {} -> {} ({}, on {}) in {:.1f}s\n", a.model, a.out, a.method, rep.backend, rep.seconds);
}
}  // namespace

void add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  a->model = default_model_path();
  CLI::App* c = app.add_subcommand("quantize", "Quantize a model (Atom W4A4+O128, RTN W4A4, W8A8) to a checkpoint");
  a->cmd = c;
  c->add_option("-m,--model", a->model, "Input model: HF directory or .gguf")->capture_default_str();
  c->add_option("-o,--out", a->out, "Output checkpoint directory")->required();
  c->add_option("--calib", a->calib, "Calibration text file")->capture_default_str();
  c->add_option("--method", a->method, "atom | rtn | w8a8")->capture_default_str();
  c->add_option("--outliers", a->outliers, "INT8 outlier channels per linear input")->capture_default_str();
  c->add_option("--group", a->group, "INT4 group size (0 = one group per row)")->capture_default_str();
  c->add_option("--a-bits", a->a_bits, "Activation bits: 4, or 16 for weight-only W4A16 (ablation)")
      ->capture_default_str()->check(CLI::IsMember({4, 16}));
  c->add_option("--outlier-bits", a->outlier_bits, "8, or 16 to keep outliers in fp16 (ablation)")->capture_default_str();
  c->add_option("--w-clip", a->w_clip, "Weight clip ratio, or 'search' (per layer, RTN)");
  c->add_option("--a-clip", a->a_clip, "Activation clip ratio")->capture_default_str();
  c->add_flag("--gptq", a->gptq_on, "Use GPTQ (default for atom)");
  c->add_flag("--no-gptq", a->gptq_off, "Round to nearest instead of GPTQ");
  c->add_option("--kv-bits", a->kv_bits, "KV cache bits: 4, 8 or 16")->capture_default_str();
  c->add_flag("--kv-pre-rope", a->kv_pre_rope, "Quantize K before RoPE (default: after)");
  c->add_option("--samples", a->samples, "Calibration windows")->capture_default_str();
  c->add_option("--seqlen", a->seqlen, "Calibration window length")->capture_default_str();
  c->add_option("--tp-segments", a->tp_segments,
                 "Quantize o_proj/down_proj as N K-segments so the checkpoint splits over N (or a divisor "
                 "of N) tensor-parallel ranks")->capture_default_str()->check(CLI::Range(1, 64));
  c->add_option("--seed", a->seed, "Calibration sampling seed")->capture_default_str();
  c->add_option("--device", a->device,
                 "Where calibration forward passes, statistics and GPTQ run: auto (cuda when a GPU is visible and "
                 "the build has CUDA), cpu (the reference) or cuda")
      ->capture_default_str()->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  c->add_flag("--calib-tf32", a->calib_tf32,
              "GPU calibration passes on TF32 tensor cores (X^T X stays fp32 into double): faster, at GPTQ's usual "
              "calibration precision; the default is fp32, which matches the CPU reference's statistics to 1e-4");
  c->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->callback([a] { run_quantize(*a); });
}

}  // namespace atom::cli
