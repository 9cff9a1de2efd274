// atom ppl: perplexity with the GPTQ/Atom protocol (whole file tokenized, non-overlapping windows).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "atom/core/error.h"
#include "atom/dist/tensor_parallel.h"
#include "atom/model/perplexity.h"
#include "atom/quant/pipeline.h"
#include "commands.h"
#ifdef ATOM_WITH_CUDA
#include "atom/backend/cuda/gpu_model.h"
#endif

namespace atom::cli {

namespace {
struct PplArgs {
  std::string model, data = "../shared/data/wikitext2-test.txt", json_out, device = "cpu";
  int ctx = 2048, threads = 0, kv_bits = 0, tp = 1, chunk = 256;
  bool kv_pre_rope = false;
  int64_t max_windows = 0;
};

void run_ppl(const PplArgs& a) {
  set_threads(a.threads);
  std::ifstream f(a.data, std::ios::binary);
  ATOM_CHECK(f.good(), "cannot read --data '{}'", a.data);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  ATOM_CHECK(!text.empty(), "--data '{}' is empty", a.data);
  LoadedModel lm = load_model_and_tokenizer(a.model);
  if (a.kv_bits != 0) {  // override the model's KV-cache format (ablations, RoPE placement)
    quant::QuantConfig kv;
    kv.method = "atom";
    kv.kv_bits = a.kv_bits;
    kv.kv_pre_rope = a.kv_pre_rope;
    kv.validate();
    quant::apply_kv_format(*lm.model, kv);
    spdlog::info("KV cache: {} bits, K quantized {} RoPE", a.kv_bits, a.kv_pre_rope ? "before" : "after");
  }
  spdlog::info("tokenizing {} ({} bytes)", a.data, text.size());
  const std::vector<int32_t> ids = lm.tokenizer->encode(text, false, false);
  spdlog::info("{} tokens, {} windows of {}", ids.size(), ids.size() / size_t(a.ctx), a.ctx);
  PerplexityResult r;
  std::string gpu_summary;
  if (a.device == "cuda") {
    ATOM_CHECK(a.tp == 1, "atom ppl --device cuda runs on one GPU; --tp {} runs on --device cpu (or serve with "
               "--device cuda --tp N)", a.tp);
#ifdef ATOM_WITH_CUDA
    // The same model on the GPU (its linears pick the mode); one window's pages, chunked prefill.
    cuda::GpuModelOptions o;
    o.max_tokens = o.max_logit_rows = a.chunk;
    o.max_seqs = 1;
    o.kv_bits = a.kv_bits;
    o.max_blocks_per_seq = o.kv_pages = (a.ctx + o.page_size - 1) / o.page_size;
    auto gpu = cuda::GpuLlamaModel::from_cpu(*lm.model, o);
    gpu_summary = gpu->summary();
    spdlog::info("{}", gpu_summary);
    r = cuda::evaluate_perplexity_gpu(*gpu, ids, a.ctx, a.max_windows, a.chunk);
#else
    fail("--device cuda: this build has no CUDA backend (configure with -DATOM_CUDA=ON)");
#endif
  } else if (a.tp > 1) {  // tensor-parallel ranks as threads: the CPU reference of multi-GPU serving
    dist::TensorParallelModel tp(*lm.model, a.tp);
    std::vector<KVCache> caches = tp.make_caches(a.ctx);
    const WindowModel wm = hidden_state_window_model(
        tp.config().hidden_size, tp.config().vocab_size,
        [&](const int32_t* t, int64_t n, float* hidden) {
          for (KVCache& c : caches) c.clear();
          tp.forward(t, n, caches, hidden);
        },
        [&](const float* h, int64_t n, float* out) { tp.logits(h, n, out); });
    spdlog::info("tensor parallel: {} ranks on the CPU", a.tp);
    r = evaluate_perplexity(wm, ids, a.ctx, a.max_windows);
  } else {
    r = evaluate_perplexity(*lm.model, ids, a.ctx, a.max_windows);
  }
  fmt::print("perplexity {:.4f} over {} of {} windows x {} ({} predicted tokens) in {:.1f}s\n", r.ppl, r.windows,
             r.total_windows, r.ctx, r.predicted_tokens, r.seconds);
  if (!a.json_out.empty()) {
    nlohmann::json j = {{"model", a.model},         {"data", a.data},
                        {"ctx", r.ctx},             {"windows", r.windows},
                        {"total_windows", r.total_windows}, {"tokens_in_file", ids.size()},
                        {"predicted_tokens", r.predicted_tokens}, {"mean_nll", r.mean_nll},
                        {"ppl", r.ppl},             {"seconds", r.seconds},
                        {"weights", lm.model->weights_note}, {"kv_bits_override", a.kv_bits},
                        {"kv_pre_rope", a.kv_pre_rope}, {"tp", a.tp},
                        {"device", a.device}, {"gpu", gpu_summary}};
    std::ofstream o(a.json_out);
    ATOM_CHECK(o.good(), "cannot write --json '{}'", a.json_out);
    o << j.dump(2) << "\n";
  }
}
}  // namespace

void add_ppl_command(CLI::App& app) {
  auto a = std::make_shared<PplArgs>();
  a->model = default_model_path();
  CLI::App* c = app.add_subcommand("ppl", "Perplexity of a text file (GPTQ/Atom protocol)");
  c->add_option("-m,--model", a->model, "HF model directory, .gguf file, or Atom checkpoint")->capture_default_str();
  c->add_option("-d,--data", a->data, "Text file (tokenized whole)")->capture_default_str();
  c->add_option("--ctx", a->ctx, "Window length in tokens")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  c->add_option("--max-windows", a->max_windows, "Evaluate only the first N windows (0 = all)")->capture_default_str();
  c->add_option("--json", a->json_out, "Also write the result as JSON to this file");
  c->add_option("--kv-bits", a->kv_bits, "Override the KV-cache format: 4, 8 or 16 (0 = the model's own)")
      ->check(CLI::IsMember({0, 4, 8, 16}));
  c->add_flag("--kv-pre-rope", a->kv_pre_rope, "With --kv-bits: quantize K before RoPE");
  c->add_option("--tp", a->tp, "Tensor-parallel ranks (CPU threads; the checkpoint needs --tp-segments "
                             "a multiple of it when quantized)")->capture_default_str()->check(CLI::Range(1, 64));
  c->add_option("--device", a->device, "cpu (the reference) or cuda (GpuLlamaModel; mode from the model's linears)")
      ->capture_default_str()->check(CLI::IsMember({"cpu", "cuda"}));
  c->add_option("--chunk", a->chunk, "--device cuda: prefill chunk (tokens per step)")->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  c->add_option("-t,--threads", a->threads, "CPU threads (0 = all)")->capture_default_str();
  c->callback([a] { run_ppl(*a); });
}

}  // namespace atom::cli
