// The tiny random Llama of the GPU model tests and its CPU reference in each mode (shared by
// test_gpu_model.cpp and test_cuda_executor.cpp).
#pragma once
#include <cmath>

#include "atom/backend/cpu/ops.h"
#include "atom/backend/cuda/gpu_model.h"
#include "atom/model/loader.h"
#include "atom/quant/pipeline.h"
#include "atom/quant/w8a8_linear.h"
#include "gpu_test_util.h"

namespace gpu_test {

inline ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 512;
  c.hidden_size = 384;
  c.intermediate_size = 1024;
  c.num_layers = 2;
  c.num_heads = 6;
  c.num_kv_heads = 2;
  c.head_dim = 64;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = true;
  return c;
}

inline int input_kind(LinearSlot s) {
  return s <= LinearSlot::V ? 0 : s == LinearSlot::O ? 1 : s == LinearSlot::Down ? 3 : 2;
}

// The tiny model with its linears replaced as `mode` wants (shared reorder / smoothing per input)
// and the mode's KV format installed — the CPU reference of the GPU model.
inline std::unique_ptr<LlamaModel> cpu_model(GpuMode mode, uint64_t seed, const ModelConfig& config = tiny_config()) {
  auto m = make_random_llama(config, seed);
  std::mt19937_64 rng(seed + 1);
  if (mode == GpuMode::Fp16) return m;
  for (LlamaLayer& L : m->layers) {
    std::vector<int32_t> perm[4];
    std::vector<float> amax[4];
    for (int s = 0; s < kNumLinearSlots; ++s) {
      const int kind = input_kind(LinearSlot(s));
      const auto& d = static_cast<const DenseLinear&>(*L.linear[s]);
      const int64_t k = d.in_features();
      if (perm[kind].empty()) {
        perm[kind] = random_perm(k, rng);
        std::uniform_real_distribution<float> ud(0.2f, 8.0f);
        amax[kind].resize(static_cast<size_t>(k));
        for (auto& v : amax[kind]) v = ud(rng);
      }
      if (mode == GpuMode::Atom) {
        L.linear[s] = std::make_unique<quant::AtomLinear>(d.weight().data(), d.out_features(), k, perm[kind],
                                                          quant::AtomConfig{});
      } else {
        std::vector<float> wmax(static_cast<size_t>(k), 1.0f);  // a fixed smoothing vector per input (as the pipeline shares)
        const auto smooth = quant::smoothquant_factors(amax[kind].data(), wmax.data(), k);
        L.linear[s] = std::make_unique<quant::W8A8Linear>(
            quant::w8a8_quantize(d.weight().data(), d.out_features(), k, smooth));
      }
    }
  }
  quant::QuantConfig q;
  q.kv_bits = mode == GpuMode::Atom ? 4 : 8;
  quant::apply_kv_format(*m, q);
  return m;
}

// Every token's logits [n, vocab] of `toks` run through the CPU model from position 0.
inline std::vector<float> cpu_all_logits(const LlamaModel& m, const std::vector<int32_t>& toks) {
  const int64_t n = int64_t(toks.size());
  KVCache cache(m.cfg, n);
  std::vector<float> hidden(static_cast<size_t>(n * m.cfg.hidden_size)), out(static_cast<size_t>(n * m.cfg.vocab_size));
  m.forward(toks.data(), n, cache, hidden.data());
  m.logits(hidden.data(), n, out.data());
  return out;
}

inline GpuModelOptions small_options() {
  GpuModelOptions o;
  o.max_tokens = 128;
  o.max_seqs = 8;
  o.max_logit_rows = 64;
  o.kv_pages = 96;
  return o;
}

inline std::vector<int32_t> random_tokens(int64_t n, std::mt19937_64& rng) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = int32_t(rng() % 512);
  return t;
}

inline double mean_nll(const std::vector<float>& logits, const std::vector<int32_t>& toks, int64_t V) {
  double s = 0;
  for (size_t i = 0; i + 1 < toks.size(); ++i)
    s += cpu::logsumexp(&logits[i * size_t(V)], V) - logits[i * size_t(V) + size_t(toks[i + 1])];
  return s / double(toks.size() - 1);
}

// sqrt(sum (a-b)^2 / sum b^2)
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace gpu_test
