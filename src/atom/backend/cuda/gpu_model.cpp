// GpuLlamaModel (gpu_model.h): weights, workspaces, the KV pool, and the forward pass.
// Weight construction (from a CPU model / synthetic) is in gpu_model_weights.cpp.
#include "atom/backend/cuda/gpu_model_impl.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "atom/backend/cuda/elementwise.h"
#include "atom/backend/cuda/gpu_sampling.h"
#include "atom/backend/cuda/rope_kv_f32.h"
#include "atom/core/error.h"

namespace atom::cuda {

const char* gpu_mode_name(GpuMode m) {
  switch (m) {
    case GpuMode::Fp16: return "fp16";
    case GpuMode::W8A8: return "w8a8";
    case GpuMode::Atom: return "atom";
  }
  return "?";
}

GpuMode parse_gpu_mode(const std::string& s) {
  if (s == "fp16") return GpuMode::Fp16;
  if (s == "w8a8") return GpuMode::W8A8;
  if (s == "atom") return GpuMode::Atom;
  fail("unknown GPU mode '{}' (fp16, w8a8, atom)", s);
}

// ------------------------------------------------------------------ one linear, per mode

// Where the fused kernel in front of `lin` writes: the mode's input format of that linear.
FusedOut GpuLlamaModel::Impl::input_of(GpuLinear& lin) {
  FusedOut o;
  switch (mode) {
    case GpuMode::Fp16: o.f16 = act_f16.data(); break;
    case GpuMode::W8A8:
      o.i8 = act_i8.data();
      o.i8_scale = act_i8_scale.data();
      o.smooth = lin.w8.smooth.size() ? lin.w8.smooth.data() : nullptr;
      break;
    case GpuMode::Atom: o = atom_target(act_atom, lin.atom); break;
  }
  o.quant_from_f32 = opt.f32_acts;
  return o;
}

// y = input · Wᵀ for T rows into `out` (GemmOut). fp16_in overrides the fp16-mode input (the attention
// output goes to o_proj without a copy).
void GpuLlamaModel::Impl::gemm(GpuLinear& lin, int64_t T, const GemmOut& out, const uint16_t* fp16_in) {
  const int m = int(T), n = int(lin.n), k = int(lin.k);
  switch (mode) {
    case GpuMode::Fp16: {
      const uint16_t* x = fp16_in ? fp16_in : act_f16.data();
      if (out.y16) blas.gemm_fp16(x, lin.f16.data(), out.y16, m, n, k, stream);
      else blas.gemm_fp16_f32(x, lin.f16.data(), out.y32, m, n, k, out.accumulate ? 1.0f : 0.0f, stream);
      break;
    }
    case GpuMode::W8A8: {
      W8A8Out o;
      o.y16 = out.y16;
      o.y32 = out.y32;
      o.accumulate = out.accumulate;
      w8a8_gemm(blas, act_i8.data(), act_i8_scale.data(), T, lin.w8, acc_i32.data(), o, stream);
      break;
    }
    case GpuMode::Atom:
      if (!out.accumulate) {
        atom_gemm(act_atom, lin.atom, out.y16, out.y16 ? nullptr : out.y32, nullptr, stream);
      } else {  // atom_gemm may split K with atomics into its fp32 output: sum into scratch, then add
        atom_gemm(act_atom, lin.atom, nullptr, tmp_f32.data(), nullptr, stream);
        add_f32(out.y32, tmp_f32.data(), T * lin.n, stream);
      }
      break;
  }
}

void GpuLlamaModel::Impl::residual_gemm(GpuLinear& lin, int64_t T, const uint16_t* fp16_in) {
  if (!opt.all_reduce) return gemm(lin, T, GemmOut{nullptr, x_f32.data(), true}, fp16_in);
  gemm(lin, T, GemmOut{nullptr, tmp_f32.data(), false}, fp16_in);  // this rank's partial sum
  opt.all_reduce(tmp_f32.data(), T * lin.n, stream);
  add_f32(x_f32.data(), tmp_f32.data(), T * lin.n, stream);
}

// ------------------------------------------------------------------ the forward pass

// Packs the batch's host metadata into one int32 array, copied to the device in one transfer.
void GpuLlamaModel::Impl::upload_batch(const std::vector<SeqStep>& batch, bool all_logits, int64_t n_real,
                                       int blocks_stride) {
  const ModelConfig& c = cfg;
  const int64_t B = int64_t(batch.size());
  ATOM_CHECK(B > 0 && B <= opt.max_seqs, "GPU step: {} sequences (1..{} allowed)", B, opt.max_seqs);
  int64_t T = 0, R = 0, max_q = 0, max_blocks = 1;
  for (const SeqStep& sq : batch) {
    ATOM_CHECK(sq.n_tokens > 0 && sq.tokens, "GPU step: sequence {} has no tokens", sq.seq_id);
    ATOM_CHECK(sq.start_pos >= 0 && sq.block_table && sq.n_blocks * page_size >= sq.start_pos + sq.n_tokens,
               "GPU step: sequence {} needs pages for {} positions, its block table has {} pages of {}", sq.seq_id,
               sq.start_pos + sq.n_tokens, sq.n_blocks, page_size);
    ATOM_CHECK(sq.n_blocks <= max_blocks_cap, "GPU step: sequence {} has {} blocks (max {})", sq.seq_id, sq.n_blocks,
               max_blocks_cap);
    T += sq.n_tokens;
    R += all_logits ? sq.n_tokens : (sq.want_logits ? 1 : 0);
    max_q = std::max(max_q, sq.n_tokens);
    max_blocks = std::max(max_blocks, sq.n_blocks);
  }
  ATOM_CHECK(T <= opt.max_tokens, "GPU step: {} tokens exceed max_tokens {}", T, opt.max_tokens);
  ATOM_CHECK(R <= max_logit_rows, "GPU step: {} logits rows exceed max_logit_rows {}", R, max_logit_rows);
  if (blocks_stride > 0) max_blocks = std::max<int64_t>(max_blocks, blocks_stride);
  step_T = T;
  step_B = B;
  step_R = R;
  step_max_q = int(max_q);
  step_max_blocks = int(max_blocks);
  // layout: tokens[T] pos[T] slots[T] cu_q[B+1] seq_lens[B] block_tables[B*max_blocks] logit_rows[R]
  off_tokens = 0;
  off_pos = T;
  off_slots = 2 * T;
  off_cu_q = 3 * T;
  off_seq_lens = off_cu_q + B + 1;
  off_bt = off_seq_lens + B;
  off_rows = off_bt + B * max_blocks;
  const int64_t total = off_rows + R;
  int32_t* h = host_meta.data();
  int64_t t = 0, rr = 0;
  h[off_cu_q] = 0;
  for (int64_t b = 0; b < B; ++b) {
    const SeqStep& sq = batch[size_t(b)];
    for (int64_t i = 0; i < sq.n_tokens; ++i, ++t) {
      const int32_t tok = sq.tokens[i];
      ATOM_CHECK(tok >= 0 && tok < c.vocab_size, "token id {} out of range [0, {})", tok, c.vocab_size);
      const int64_t p = sq.start_pos + i;
      const int32_t page = sq.block_table[p / page_size];
      const int64_t limit = b < n_real ? usable_pages : kv->spec().n_pages;
      ATOM_CHECK(page >= 0 && page < limit, "GPU step: page {} outside the pool of {}", page, limit);
      h[off_tokens + t] = tok;
      h[off_pos + t] = int32_t(p);
      h[off_slots + t] = int32_t(int64_t(page) * page_size + p % page_size);
      if (all_logits || (sq.want_logits && i == sq.n_tokens - 1)) h[off_rows + rr++] = int32_t(t);
    }
    h[off_cu_q + b + 1] = int32_t(t);
    h[off_seq_lens + b] = int32_t(sq.start_pos + sq.n_tokens);
    for (int64_t j = 0; j < max_blocks; ++j)
      h[off_bt + b * max_blocks + j] = j < sq.n_blocks ? sq.block_table[j] : 0;
  }
  ATOM_CUDA_CHECK(cudaMemcpyAsync(meta.data(), h, size_t(total) * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
}

void GpuLlamaModel::Impl::run_device(bool greedy) {
  const ModelConfig& c = cfg;
  const int64_t T = step_T, H = c.hidden_size, F = c.intermediate_size;
  const int nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  const int32_t* d = meta.data();
  const float scale = 1.0f / std::sqrt(float(hd));
  float* x = x_f32.data();

  embed_rows(embed.data(), d + off_tokens, T, H, x, stream);
  for (int l = 0; l < c.num_layers; ++l) {
    GpuLayer& L = layers[size_t(l)];
    // --- attention block: x += o_proj(attn(rope(q), rope(k), v)), q/k/v = stacked GEMM of norm1(x) ---
    rmsnorm_quant(x, ActDtype::F32, T, H, L.attn_norm.data(), c.rms_norm_eps, input_of(L.qkv), stream);
    if (opt.f32_acts) {
      gemm(L.qkv, T, GemmOut{nullptr, qkv32.data(), false});
      rope_kv_append_f32(qkv32.data(), d + off_pos, inv_freq.data(), T, nh, nkv, hd, q16.data(), *kv, l,
                         d + off_slots, stream);
    } else {
      gemm(L.qkv, T, GemmOut{qkv16.data(), nullptr, false});
      rope_split(qkv16.data(), d + off_pos, inv_freq.data(), T, nh, nkv, hd, q16.data(), k16.data(), v16.data(),
                 stream);
      kv_append(*kv, l, k16.data(), v16.data(), d + off_slots, T, stream);
    }
    paged_attention(*kv, l, q16.data(), d + off_cu_q, d + off_seq_lens, d + off_bt, step_max_blocks, int(step_B), T,
                    nh, scale, att16.data(), *attn_ws, stream, step_max_q);
    if (mode != GpuMode::Fp16) reorder_quant(att16.data(), ActDtype::F16, T, int64_t(nh) * hd, input_of(L.o), stream);
    residual_gemm(L.o, T, att16.data());
    // --- MLP block: x += down(silu(gate(norm2(x))) * up(norm2(x))), gate/up = one stacked GEMM ---
    rmsnorm_quant(x, ActDtype::F32, T, H, L.ffn_norm.data(), c.rms_norm_eps, input_of(L.gate_up), stream);
    if (gu32.size()) {  // quantized modes with f32_acts: SiLU·up from the fp32 GEMM output
      gemm(L.gate_up, T, GemmOut{nullptr, gu32.data(), false});
      silu_mul_quant(gu32.data(), ActDtype::F32, T, F, input_of(L.down), stream);
    } else {
      gemm(L.gate_up, T, GemmOut{gu16.data(), nullptr, false});
      silu_mul_quant(gu16.data(), ActDtype::F16, T, F, input_of(L.down), stream);
    }
    residual_gemm(L.down, T);
  }
  // --- final norm of the rows that want logits, lm_head (fp16 weights, fp32 logits) ---
  const int64_t R = step_R;
  if (R == 0) return;
  FusedOut hn;
  hn.f16 = act_f16.data();
  rmsnorm_quant(x, ActDtype::F32, R, H, final_norm.data(), c.rms_norm_eps, hn, stream, d + off_rows);
  blas.gemm_fp16_f32(act_f16.data(), lm_head().data(), logits_f32.data(), int(R), c.vocab_size, int(H), 0.0f, stream);
  if (greedy) argmax_rows(logits_f32.data(), R, c.vocab_size, ids_dev.data(), stream);
}

void GpuLlamaModel::Impl::forward(const std::vector<SeqStep>& batch, bool all_logits, float* logits_host,
                                  int32_t* ids_host, const std::vector<GpuRowSampling>* sampling) {
  const bool greedy = ids_host != nullptr;
  int64_t rows = 0;  // the real sequences' logits rows (padding rows of a graph step come after them)
  for (const SeqStep& sq : batch) rows += all_logits ? sq.n_tokens : (sq.want_logits ? 1 : 0);
  bool draws = false;  // any row that is not greedy
  if (sampling) {
    ATOM_CHECK(int64_t(sampling->size()) == rows, "GPU step: {} sampling rows for {} logits rows", sampling->size(),
               rows);
    for (const GpuRowSampling& r : *sampling) draws = draws || r.temperature > 0.0f;
  }
  if (all_logits || !graph_step(batch)) {
    upload_batch(batch, all_logits, int64_t(batch.size()));
    run_device(greedy && !draws);
  }
  if (draws && rows > 0) {  // after the graph or eager step: its logits rows are in logits_f32
    ATOM_CUDA_CHECK(cudaMemcpyAsync(sampling_dev.data(), sampling->data(), size_t(rows) * sizeof(GpuRowSampling),
                                    cudaMemcpyHostToDevice, stream));
    sample_rows(logits_f32.data(), rows, cfg.vocab_size, sampling_dev.data(), ids_dev.data(), stream);
  }
  if (rows > 0 && greedy)
    ATOM_CUDA_CHECK(cudaMemcpyAsync(ids_host, ids_dev.data(), size_t(rows) * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                    stream));
  else if (rows > 0)
    ATOM_CUDA_CHECK(cudaMemcpyAsync(logits_host, logits_f32.data(), size_t(rows) * cfg.vocab_size * sizeof(float),
                                    cudaMemcpyDeviceToHost, stream));
  ATOM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the step's one host sync
}

// ------------------------------------------------------------------ workspaces and the KV pool

void GpuLlamaModel::Impl::allocate_runtime() {
  const ModelConfig& c = cfg;
  const int64_t T = opt.max_tokens, H = c.hidden_size, F = c.intermediate_size;
  const int64_t qd = int64_t(c.num_heads) * c.head_dim, kvd = int64_t(c.num_kv_heads) * c.head_dim;
  ATOM_CHECK(T > 0 && opt.max_seqs > 0 && opt.page_size > 0, "GPU model: bad options");
  page_size = opt.page_size;
  max_logit_rows = opt.max_logit_rows > 0 ? opt.max_logit_rows : opt.max_seqs;
  max_blocks_cap = opt.max_blocks_per_seq > 0 ? opt.max_blocks_per_seq
                                              : (c.max_position_embeddings + page_size - 1) / page_size;
  const int64_t kmax = std::max({H, F, qd});
  x_f32.resize(size_t(T * H));
  if (const char* e = std::getenv("ATOM_GPU_F16_ACTS"); e && std::string(e) == "1") opt.f32_acts = false;
  if (opt.f32_acts) qkv32.resize(size_t(T * (qd + 2 * kvd)));
  else qkv16.resize(size_t(T * (qd + 2 * kvd)));
  q16.resize(size_t(T * qd));
  k16.resize(size_t(T * kvd));
  v16.resize(size_t(T * kvd));
  att16.resize(size_t(T * qd));
  if (opt.f32_acts && mode != GpuMode::Fp16) gu32.resize(size_t(T * 2 * F));
  else gu16.resize(size_t(T * 2 * F));
  act_f16.resize(size_t(T * kmax));
  if (mode == GpuMode::W8A8) {
    act_i8.resize(size_t(T * kmax));
    act_i8_scale.resize(size_t(T));
    acc_i32.resize(size_t(T * std::max({2 * F, qd + 2 * kvd, H})));
  }
  if (mode == GpuMode::Atom) {
    // one activation buffer for every linear input: sized for the largest layout
    GpuAtomLayout big;
    for (const GpuLayer& L : layers)
      for (const GpuLinear* lin : {&L.qkv, &L.o, &L.gate_up, &L.down}) {
        big.n_groups = std::max(big.n_groups, lin->atom.L.n_groups);
        big.n_outlier = std::max(big.n_outlier, lin->atom.L.n_outlier);
      }
    act_atom.resize(T, big);
  }
  if (mode == GpuMode::Atom || opt.all_reduce) tmp_f32.resize(size_t(T * H));  // atom residual adds, TP sums
  logits_f32.resize(size_t(max_logit_rows * c.vocab_size));
  ids_dev.resize(size_t(max_logit_rows));
  sampling_dev.resize(size_t(max_logit_rows));
  const int64_t meta_n = 3 * T + 2 * int64_t(opt.max_seqs) + 1 + int64_t(opt.max_seqs) * max_blocks_cap + max_logit_rows;
  meta.resize(size_t(meta_n));
  host_meta.resize(size_t(meta_n));
  inv_freq.upload(rope_inv_freq(c), stream);
  attn_ws = std::make_unique<AttentionWorkspace>(T, c.num_heads, c.head_dim);

  PagedKvSpec spec;
  spec.n_layers = c.num_layers;
  spec.n_kv_heads = c.num_kv_heads;
  spec.head_dim = c.head_dim;
  spec.page_size = page_size;
  const int bits = opt.kv_bits != 0 ? opt.kv_bits : (mode == GpuMode::Fp16 ? 16 : mode == GpuMode::W8A8 ? 8 : 4);
  ATOM_CHECK(bits == 4 || bits == 8 || bits == 16, "GPU model: kv_bits must be 4, 8 or 16, got {}", bits);
  spec.dtype = bits == 16 ? KvDtype::F16 : bits == 8 ? KvDtype::I8 : KvDtype::I4;
  if (opt.kv_pages > 0) {
    spec.n_pages = opt.kv_pages + 1;  // + the padding rows' page
  } else {
    ATOM_CHECK(opt.gpu_memory_utilization > 0.0f && opt.gpu_memory_utilization <= 1.0f,
               "gpu_memory_utilization must be in (0, 1], got {}", opt.gpu_memory_utilization);
    ATOM_CUDA_CHECK(cudaStreamSynchronize(stream));
    size_t free_b = 0, total_b = 0;
    ATOM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const double budget = double(free_b) - (1.0 - double(opt.gpu_memory_utilization)) * double(total_b);
    spec.n_pages = PagedKvCache::pages_that_fit(spec, int64_t(std::max(0.0, budget)));
  }
  ATOM_CHECK(spec.n_pages > 1, "GPU model: no memory left for the KV cache (weights take {:.2f} GiB)",
             double(weight_bytes) / double(1 << 30));
  spec.validate();
  kv = std::make_unique<PagedKvCache>(spec);
  usable_pages = spec.n_pages - 1;
  ATOM_CUDA_CHECK(cudaStreamSynchronize(stream));
}

// ------------------------------------------------------------------ the public class

GpuLlamaModel::GpuLlamaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuLlamaModel::~GpuLlamaModel() = default;
const ModelConfig& GpuLlamaModel::config() const { return impl_->cfg; }
GpuMode GpuLlamaModel::mode() const { return impl_->mode; }
int GpuLlamaModel::kv_bits() const { return cuda::kv_bits(impl_->kv->spec().dtype); }
int GpuLlamaModel::page_size() const { return impl_->page_size; }
int64_t GpuLlamaModel::num_pages() const { return impl_->usable_pages; }
int64_t GpuLlamaModel::weight_bytes() const { return impl_->weight_bytes; }
int64_t GpuLlamaModel::max_blocks_per_seq() const { return impl_->max_blocks_cap; }

std::string GpuLlamaModel::summary() const {
  const Impl& m = *impl_;
  return fmt::format("GPU model {}: mode {}, weights {:.2f} GiB, KV {} bits, {} pages of {} tokens ({:.2f} GiB)",
                     m.name, gpu_mode_name(m.mode), double(m.weight_bytes) / double(1 << 30), kv_bits(),
                     num_pages(), m.page_size, double(m.kv->bytes()) / double(1 << 30));
}

void GpuLlamaModel::step(const std::vector<SeqStep>& batch, float* logits) {
  impl_->forward(batch, false, logits, nullptr);
}
void GpuLlamaModel::step_greedy(const std::vector<SeqStep>& batch, int32_t* ids) {
  impl_->forward(batch, false, nullptr, ids);
}
void GpuLlamaModel::step_sample(const std::vector<SeqStep>& batch, const std::vector<GpuRowSampling>& rows,
                                int32_t* ids) {
  impl_->forward(batch, false, nullptr, ids, &rows);
}
void GpuLlamaModel::step_all_logits(const SeqStep& seq, float* logits) { impl_->forward({seq}, true, logits, nullptr); }

std::unique_ptr<GpuLlamaModel> GpuLlamaModel::Impl::finish(std::unique_ptr<Impl> impl) {
  impl->allocate_runtime();
  return std::unique_ptr<GpuLlamaModel>(new GpuLlamaModel(std::move(impl)));
}

// ------------------------------------------------------------------ perplexity

PerplexityResult evaluate_perplexity_gpu(GpuLlamaModel& model, const std::vector<int32_t>& tokens, int ctx,
                                         int64_t max_windows, int64_t chunk, bool progress) {
  ATOM_CHECK(ctx >= 2, "perplexity: ctx must be >= 2, got {}", ctx);
  ATOM_CHECK(chunk > 0, "perplexity: chunk must be positive");
  const int64_t V = model.config().vocab_size, ps = model.page_size();
  const int64_t n_blocks = (ctx + ps - 1) / ps;
  ATOM_CHECK(n_blocks <= model.num_pages() && n_blocks <= model.max_blocks_per_seq(),
             "perplexity: a window of {} needs {} KV pages, the pool has {}", ctx, n_blocks, model.num_pages());
  std::vector<int32_t> block_table(static_cast<size_t>(n_blocks));
  for (int64_t i = 0; i < n_blocks; ++i) block_table[size_t(i)] = int32_t(i);
  WindowModel wm;
  wm.vocab_size = V;
  wm.label = "ppl (gpu)";
  wm.run_window = [&, logits = std::vector<float>(size_t(chunk * V))](const int32_t* win, int64_t n,
                                                                        const LogitsSink& sink) mutable {
    for (int64_t p0 = 0; p0 < n - 1; p0 += chunk) {  // the last token is never an input that is scored
      SeqStep s;
      s.seq_id = 0;
      s.tokens = win + p0;
      s.n_tokens = std::min(chunk, n - 1 - p0);
      s.start_pos = p0;
      s.block_table = block_table.data();
      s.n_blocks = n_blocks;
      model.step_all_logits(s, logits.data());
      sink(p0, s.n_tokens, logits.data());
    }
  };
  return evaluate_perplexity(wm, tokens, ctx, max_windows, progress);
}

}  // namespace atom::cuda
