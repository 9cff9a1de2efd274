// Building GpuLlamaModel's weights: from a loaded CPU model (the linears' kind names the mode), or a
// synthetic model of a named shape generated from a seed directly on the GPU (speed work only).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "atom/backend/cuda/elementwise.h"
#include "atom/backend/cuda/gpu_model_impl.h"
#include "atom/core/error.h"
#include "atom/dist/tensor_parallel.h"
#include "atom/core/half.h"
#include "atom/model/llama.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/w8a8_linear.h"

namespace atom::cuda {
namespace {

std::vector<uint16_t> to_fp16(const float* v, size_t n) {
  std::vector<uint16_t> h(n);
  for (size_t i = 0; i < n; ++i) h[i] = float_to_fp16(v[i]);
  return h;
}

int64_t linear_bytes(const GpuLinear& l) {
  return int64_t(l.f16.bytes() + l.w8.w.bytes() + l.w8.scale.bytes() + l.w8.smooth.bytes() + l.atom.perm.bytes() + l.atom.stage.bytes() +
                 l.atom.q4.bytes() + l.atom.scale.bytes() + l.atom.q8.bytes() + l.atom.oscale.bytes());
}

GpuMode mode_of(const Linear& lin) {
  if (dynamic_cast<const DenseLinear*>(&lin)) return GpuMode::Fp16;
  if (dynamic_cast<const quant::W8A8Linear*>(&lin)) return GpuMode::W8A8;
  if (dynamic_cast<const quant::AtomLinear*>(&lin)) return GpuMode::Atom;
  fail("GPU model: no GPU form for a '{}' linear", lin.kind());
}

// Atom layers sharing an input (same perm and config) stacked along N.
quant::AtomWeights stack_atom(const std::vector<const quant::AtomWeights*>& parts) {
  quant::AtomWeights out = *parts[0];
  for (size_t i = 1; i < parts.size(); ++i) {
    const quant::AtomWeights& p = *parts[i];
    const quant::AtomConfig &a = out.config, &b = p.config;
    ATOM_CHECK(p.in_features == out.in_features && p.perm == out.perm && a.n_outlier == b.n_outlier &&
                   a.group == b.group && a.a_clip == b.a_clip && a.a_outlier_clip == b.a_outlier_clip &&
                   a.outlier_bits == b.outlier_bits && a.a_bits == b.a_bits,
               "GPU model: Atom linears sharing an input must share K, the reorder and the activation config");
    out.out_features += p.out_features;
    out.w_int4.insert(out.w_int4.end(), p.w_int4.begin(), p.w_int4.end());
    out.w_scale.insert(out.w_scale.end(), p.w_scale.begin(), p.w_scale.end());
    out.w_outlier.insert(out.w_outlier.end(), p.w_outlier.begin(), p.w_outlier.end());
    out.w_outlier_scale.insert(out.w_outlier_scale.end(), p.w_outlier_scale.begin(), p.w_outlier_scale.end());
  }
  return out;
}

// The CPU linears `slots` of one layer (sharing an input) -> one GPU GEMM in `mode`.
void upload_linear(const LlamaLayer& L, std::initializer_list<LinearSlot> slots, GpuMode mode, GpuLinear& out,
                   cudaStream_t s) {
  out.k = L.at(*slots.begin()).in_features();
  out.n = 0;
  for (LinearSlot sl : slots) {
    ATOM_CHECK(mode_of(L.at(sl)) == mode, "GPU model: {} is '{}', the model's mode is {}", linear_slot_name(sl),
               L.at(sl).kind(), gpu_mode_name(mode));
    out.n += L.at(sl).out_features();
  }
  switch (mode) {
    case GpuMode::Fp16: {
      std::vector<uint16_t> w;
      for (LinearSlot sl : slots) {
        const auto& d = static_cast<const DenseLinear&>(L.at(sl)).weight();
        const auto h = to_fp16(d.data(), d.size());
        w.insert(w.end(), h.begin(), h.end());
      }
      out.f16.upload(w, s);
      ATOM_CUDA_CHECK(cudaStreamSynchronize(s));
      break;
    }
    case GpuMode::W8A8: {
      std::vector<const quant::W8A8Weights*> parts;
      for (LinearSlot sl : slots) parts.push_back(&static_cast<const quant::W8A8Linear&>(L.at(sl)).weights());
      upload_w8a8_weights(parts, out.w8, s);
      break;
    }
    case GpuMode::Atom: {
      std::vector<const quant::AtomWeights*> parts;
      for (LinearSlot sl : slots) parts.push_back(&static_cast<const quant::AtomLinear&>(L.at(sl)).weights());
      upload_atom_weights(parts.size() == 1 ? *parts[0] : stack_atom(parts), out.atom, s);
      break;
    }
  }
}

// ---- synthetic weights ----

struct SeedSeq {
  uint64_t base, n = 0;
  uint64_t next() { return base * 0x9E3779B97F4A7C15ull + (++n) * 0xD1B54A32D192ED03ull; }
};

int64_t synthetic_linear_bytes(GpuMode mode, int64_t n, int64_t k) {
  switch (mode) {
    case GpuMode::Fp16: return 2 * n * k;
    case GpuMode::W8A8: return n * k + 4 * n + 4 * k;
    case GpuMode::Atom: {
      const GpuAtomLayout L = make_gpu_layout(k, 128, 128);
      return n * (L.q4_row_bytes() + 2 * L.n_groups + L.n_outlier + 2) + 4 * k;
    }
  }
  return 0;
}

void synthetic_linear(GpuMode mode, int64_t n, int64_t k, SeedSeq& seed, std::mt19937_64& rng, GpuLinear& out,
                      cudaStream_t s) {
  out.n = n;
  out.k = k;
  const float wstd = 1.0f / std::sqrt(float(k));  // y ~ unit scale for unit-scale inputs
  switch (mode) {
    case GpuMode::Fp16:
      out.f16.resize(size_t(n * k));
      fill_uniform_f16(out.f16.data(), n * k, seed.next(), -1.732f * wstd, 1.732f * wstd, s);
      break;
    case GpuMode::W8A8:
      out.w8.n = n;
      out.w8.k = k;
      out.w8.w.resize(size_t(n * k));
      out.w8.scale.resize(size_t(n));
      out.w8.smooth.resize(size_t(k));
      fill_random_bytes(out.w8.w.data(), n * k, seed.next(), 0xFF, true, s);
      fill_uniform_f32(out.w8.scale.data(), n, seed.next(), 0.8f * wstd / 73.0f, 1.2f * wstd / 73.0f, s);
      fill_uniform_f32(out.w8.smooth.data(), k, seed.next(), 0.5f, 2.0f, s);
      break;
    case GpuMode::Atom: {
      GpuAtomWeights& w = out.atom;
      w.n = n;
      w.k = k;
      w.L = make_gpu_layout(k, 128, 128);
      std::vector<int32_t> perm(static_cast<size_t>(k));
      std::iota(perm.begin(), perm.end(), 0);
      std::shuffle(perm.begin(), perm.end(), rng);
      upload_atom_perm(perm, w, s);
      w.q4.resize(size_t(n * w.L.q4_row_bytes()));
      w.scale.resize(size_t(w.L.scale_elems(n)));
      w.q8.resize(size_t(n * w.L.n_outlier));
      w.oscale.resize(size_t(n));
      fill_random_bytes(w.q4.data(), int64_t(w.q4.size()), seed.next(), 0xFF, false, s);
      fill_uniform_f16(w.scale.data(), int64_t(w.scale.size()), seed.next(), 0.8f * wstd / 4.6f, 1.2f * wstd / 4.6f, s);
      fill_random_bytes(w.q8.data(), int64_t(w.q8.size()), seed.next(), 0xFF, true, s);
      fill_uniform_f16(w.oscale.data(), n, seed.next(), 0.8f * wstd / 73.0f, 1.2f * wstd / 73.0f, s);
      ATOM_CUDA_CHECK(cudaStreamSynchronize(s));  // perm's host vector is a temporary
      break;
    }
  }
}

}  // namespace

std::unique_ptr<GpuLlamaModel> GpuLlamaModel::from_cpu(const LlamaModel& m, const GpuModelOptions& opt) {
  ATOM_CHECK(!m.layers.empty(), "GPU model: the CPU model has no layers");
  // The GPU quantizes K after RoPE; running a pre-RoPE-K checkpoint that way would silently be another model.
  ATOM_CHECK(!(m.kv_store_hook && m.kv_hook_pre_rope),
             "GPU model: this model quantizes K before RoPE (--kv-pre-rope), which the GPU KV cache does not "
             "implement; run it with --device cpu or re-quantize without --kv-pre-rope");
  ATOM_CHECK(m.kv_bits == 4 || m.kv_bits == 8 || m.kv_bits == 16, "GPU model: KV format of {} bits", m.kv_bits);
  auto im = std::make_unique<Impl>();
  im->name = m.source;
  im->cfg = m.cfg;
  im->opt = opt;
  // The KV format is the model's (its checkpoint says, e.g. atom with --kv-bits 16), not the mode's default.
  if (im->opt.kv_bits == 0) im->opt.kv_bits = m.kv_bits;
  im->mode = mode_of(m.layers[0].at(LinearSlot::Q));
  const cudaStream_t s = im->stream;
  const ModelConfig& c = m.cfg;
  im->embed.upload(to_fp16(m.embed.data(), m.embed.size()), s);
  if (m.lm_head) {
    const auto* d = dynamic_cast<const DenseLinear*>(m.lm_head.get());
    ATOM_CHECK(d != nullptr, "GPU model: lm_head must be dense (kept in 16-bit), got '{}'", m.lm_head->kind());
    im->lm_head_w.upload(to_fp16(d->weight().data(), d->weight().size()), s);
  }
  im->final_norm.upload(m.final_norm, s);
  im->layers.resize(size_t(c.num_layers));
  for (int l = 0; l < c.num_layers; ++l) {
    const LlamaLayer& L = m.layers[size_t(l)];
    GpuLayer& G = im->layers[size_t(l)];
    G.attn_norm.upload(L.attn_norm, s);
    G.ffn_norm.upload(L.ffn_norm, s);
    upload_linear(L, {LinearSlot::Q, LinearSlot::K, LinearSlot::V}, im->mode, G.qkv, s);
    upload_linear(L, {LinearSlot::O}, im->mode, G.o, s);
    upload_linear(L, {LinearSlot::Gate, LinearSlot::Up}, im->mode, G.gate_up, s);
    upload_linear(L, {LinearSlot::Down}, im->mode, G.down, s);
  }
  ATOM_CUDA_CHECK(cudaStreamSynchronize(s));
  im->weight_bytes = int64_t(im->embed.bytes() + im->lm_head_w.bytes() + im->final_norm.bytes());
  for (const GpuLayer& G : im->layers)
    im->weight_bytes += int64_t(G.attn_norm.bytes() + G.ffn_norm.bytes()) + linear_bytes(G.qkv) + linear_bytes(G.o) +
                        linear_bytes(G.gate_up) + linear_bytes(G.down);
  return Impl::finish(std::move(im));
}

ModelConfig GpuLlamaModel::named_shape(const std::string& name) {
  ModelConfig c;
  c.vocab_size = 32000;
  c.max_position_embeddings = 4096;
  c.rms_norm_eps = 1e-5f;
  c.tie_word_embeddings = true;  // synthetic: the lm_head reads the embedding table (same bytes as untied)
  auto set = [&](int h, int f, int layers, int heads, int kv_heads) {
    c.hidden_size = h;
    c.intermediate_size = f;
    c.num_layers = layers;
    c.num_heads = heads;
    c.num_kv_heads = kv_heads;
    c.head_dim = h / heads;
  };
  if (name == "llama2-7b") {
    set(4096, 11008, 32, 32, 32);
  } else if (name == "llama2-13b") {
    set(5120, 13824, 40, 40, 40);
  } else if (name == "llama2-70b") {
    set(8192, 28672, 80, 64, 8);
  } else if (name == "llama3-8b") {
    set(4096, 14336, 32, 32, 8);
    c.vocab_size = 128256;
    c.max_position_embeddings = 131072;
    c.rope_theta = 500000.0f;
    c.rope_scaling.type = RopeScaling::Type::Llama3;  // Llama-3.1's long-context scaling
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.low_freq_factor = 1.0f;
    c.rope_scaling.high_freq_factor = 4.0f;
    c.rope_scaling.original_max_position_embeddings = 8192;
  } else {
    fail("unknown model shape '{}' (llama2-7b, llama2-13b, llama2-70b, llama3-8b)", name);
  }
  c.validate();
  return c;
}

std::unique_ptr<GpuLlamaModel> GpuLlamaModel::synthetic(const std::string& shape, GpuMode mode, uint64_t seed,
                                                        const GpuModelOptions& opt, int tp) {
  auto im = std::make_unique<Impl>();
  im->cfg = tp > 1 ? dist::shard_config(named_shape(shape), tp) : named_shape(shape);
  im->name = tp > 1 ? fmt::format("{}-synthetic-tp{}-shard", shape, tp) : shape + "-synthetic";
  im->mode = mode;
  im->opt = opt;
  const ModelConfig& c = im->cfg;
  const int64_t H = c.hidden_size, F = c.intermediate_size, qd = int64_t(c.num_heads) * c.head_dim,
                kvd = int64_t(c.num_kv_heads) * c.head_dim;
  // Refuse before allocating when the weights cannot fit (e.g. llama2-70b in fp16 on one 80 GB GPU).
  const int64_t per_layer = synthetic_linear_bytes(mode, qd + 2 * kvd, H) + synthetic_linear_bytes(mode, H, qd) +
                            synthetic_linear_bytes(mode, 2 * F, H) + synthetic_linear_bytes(mode, H, F) + 8 * H;
  const int64_t need = per_layer * c.num_layers + 2 * int64_t(c.vocab_size) * H + 4 * H;
  size_t free_b = 0, total_b = 0;
  ATOM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  // The weights must fit the share of memory the model may take (gpu_memory_utilization, as the KV pool's
  // budget: what is already in use counts against it), leaving room for the KV cache and workspaces.
  const double budget = std::min(0.97 * double(free_b), double(opt.gpu_memory_utilization) * double(total_b) -
                                                            double(total_b - free_b));
  ATOM_CHECK(double(need) < budget,
             "{} in {} mode needs {:.1f} GiB of weights; {:.1f} GiB of the GPU's {:.1f} GiB are free, {:.1f} GiB within "
             "--gpu-memory-utilization {}",
             shape, gpu_mode_name(mode), double(need) / double(1 << 30), double(free_b) / double(1 << 30),
             double(total_b) / double(1 << 30), std::max(0.0, budget) / double(1 << 30), opt.gpu_memory_utilization);
  const cudaStream_t s = im->stream;
  SeedSeq seeds{seed};
  std::mt19937_64 rng(seed);
  im->embed.resize(size_t(int64_t(c.vocab_size) * H));
  fill_uniform_f16(im->embed.data(), int64_t(im->embed.size()), seeds.next(), -1.0f, 1.0f, s);
  im->final_norm.resize(size_t(H));
  fill_uniform_f32(im->final_norm.data(), H, seeds.next(), 0.8f, 1.2f, s);
  im->layers.resize(size_t(c.num_layers));
  for (GpuLayer& G : im->layers) {
    G.attn_norm.resize(size_t(H));
    G.ffn_norm.resize(size_t(H));
    fill_uniform_f32(G.attn_norm.data(), H, seeds.next(), 0.8f, 1.2f, s);
    fill_uniform_f32(G.ffn_norm.data(), H, seeds.next(), 0.8f, 1.2f, s);
    synthetic_linear(mode, qd + 2 * kvd, H, seeds, rng, G.qkv, s);
    synthetic_linear(mode, H, qd, seeds, rng, G.o, s);
    synthetic_linear(mode, 2 * F, H, seeds, rng, G.gate_up, s);
    synthetic_linear(mode, H, F, seeds, rng, G.down, s);
  }
  ATOM_CUDA_CHECK(cudaStreamSynchronize(s));
  im->weight_bytes = int64_t(im->embed.bytes() + im->final_norm.bytes());
  for (const GpuLayer& G : im->layers)
    im->weight_bytes += int64_t(G.attn_norm.bytes() + G.ffn_norm.bytes()) + linear_bytes(G.qkv) + linear_bytes(G.o) +
                        linear_bytes(G.gate_up) + linear_bytes(G.down);
  return Impl::finish(std::move(im));
}

}  // namespace atom::cuda
