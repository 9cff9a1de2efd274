#include "atom/quant/pipeline.h"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>

#include "atom/core/error.h"
#include "atom/model/segmented_linear.h"
#include "atom/quant/calibrate.h"
#include "atom/quant/gptq.h"
#include "atom/quant/kv_quant.h"
#include "atom/quant/quant_backend.h"
#include "atom/quant/quantize.h"
#include "atom/quant/w8a8_linear.h"

namespace atom::quant {

void QuantConfig::validate() const {
  ATOM_CHECK(method == "atom" || method == "w8a8" || method == "fp16",
             "unknown quantization method '{}' (expected atom, w8a8 or fp16)", method);
  ATOM_CHECK(kv_bits == 4 || kv_bits == 8 || kv_bits == 16, "kv bits must be 4, 8 or 16, got {}", kv_bits);
  ATOM_CHECK(atom.n_outlier >= 0, "outliers must be >= 0, got {}", atom.n_outlier);
  ATOM_CHECK(atom.w_clip > 0 && atom.w_clip <= 1, "weight clip must be in (0, 1], got {}", atom.w_clip);
  ATOM_CHECK(atom.a_clip > 0 && atom.a_clip <= 1, "activation clip must be in (0, 1], got {}", atom.a_clip);
  ATOM_CHECK(atom.outlier_bits == 8 || atom.outlier_bits == 16, "outlier bits must be 8 or 16, got {}",
             atom.outlier_bits);
  ATOM_CHECK(samples > 0 && seqlen > 1, "calibration needs samples > 0 and seqlen > 1");
  ATOM_CHECK(tp_segments >= 1 && tp_segments <= 64, "tp segments must be in 1..64, got {}", tp_segments);
  ATOM_CHECK(smooth_alpha >= 0 && smooth_alpha <= 1, "smoothing alpha must be in [0, 1], got {}", smooth_alpha);
}

nlohmann::json QuantConfig::to_json() const {
  return {{"method", method},
          {"n_outlier", atom.n_outlier},
          {"group", atom.group},
          {"w_clip", atom.w_clip},
          {"a_clip", atom.a_clip},
          {"w_outlier_clip", atom.w_outlier_clip},
          {"a_outlier_clip", atom.a_outlier_clip},
          {"outlier_bits", atom.outlier_bits},
          {"a_bits", atom.a_bits},
          {"w_clip_search", w_clip_search},
          {"gptq", gptq},
          {"kv_bits", kv_bits},
          {"kv_pre_rope", kv_pre_rope},
          {"smooth_alpha", smooth_alpha},
          {"tp_segments", tp_segments},
          {"samples", samples},
          {"seqlen", seqlen},
          {"seed", seed},
          {"calib_file", calib_file}};
}

QuantConfig QuantConfig::from_json(const nlohmann::json& j) {
  QuantConfig c;
  try {
    c.method = j.at("method").get<std::string>();
    c.atom.n_outlier = j.at("n_outlier").get<int>();
    c.atom.group = j.at("group").get<int>();
    c.atom.w_clip = j.at("w_clip").get<float>();
    c.atom.a_clip = j.at("a_clip").get<float>();
    c.atom.w_outlier_clip = j.value("w_outlier_clip", 1.0f);
    c.atom.a_outlier_clip = j.value("a_outlier_clip", 1.0f);
    c.atom.outlier_bits = j.at("outlier_bits").get<int>();
    c.atom.a_bits = j.value("a_bits", 4);
    c.w_clip_search = j.value("w_clip_search", false);
    c.gptq = j.at("gptq").get<bool>();
    c.kv_bits = j.at("kv_bits").get<int>();
    c.kv_pre_rope = j.value("kv_pre_rope", false);
    c.smooth_alpha = j.value("smooth_alpha", 0.5f);
    c.tp_segments = j.value("tp_segments", 1);
    c.samples = j.value("samples", 0);
    c.seqlen = j.value("seqlen", 0);
    c.seed = j.value("seed", uint64_t(0));
    c.calib_file = j.value("calib_file", std::string());
  } catch (const nlohmann::json::exception& e) {
    fail("quantization config: {}", e.what());
  }
  if (c.samples <= 0) c.samples = 1;
  if (c.seqlen <= 1) c.seqlen = 2;
  c.validate();
  return c;
}

nlohmann::json QuantizeReport::to_json() const {
  nlohmann::json lin = nlohmann::json::array();
  for (const auto& r : linears)
    lin.push_back({{"layer", r.layer}, {"linear", r.linear}, {"rel_error", r.rel_error}, {"w_clip", r.w_clip}});
  return {{"seconds", seconds}, {"calib_tokens", calib_tokens}, {"backend", backend}, {"stage_seconds", stage_seconds},
          {"linears", lin}};
}

void apply_kv_format(LlamaModel& model, const QuantConfig& cfg) {
  if (cfg.method == "fp16" || cfg.kv_bits == 16) {
    model.kv_store_hook = nullptr;
    model.kv_bits = 16;
    return;
  }
  const int bits = cfg.kv_bits, n_kv = model.cfg.num_kv_heads, hd = model.cfg.head_dim;
  const int64_t stride = int64_t(n_kv) * hd;
  model.kv_hook_pre_rope = cfg.kv_pre_rope;
  model.kv_bits = bits;
  model.kv_store_hook = [=](int, float* k, float* v, int64_t m) {
    kv_fake_quant_rows(k, m, stride, n_kv, hd, bits);
    kv_fake_quant_rows(v, m, stride, n_kv, hd, bits);
  };
}

namespace {

const DenseLinear& dense(const LlamaLayer& L, LinearSlot s) {
  auto* d = dynamic_cast<const DenseLinear*>(L.linear[int(s)].get());
  ATOM_CHECK(d, "quantize: layer {} is already quantized ({})", linear_slot_name(s), L.linear[int(s)]->kind());
  return *d;
}

// Permutes the rows of a [n, k] weight: out[i] = w[perm[i]].
std::vector<float> permute_rows(const std::vector<float>& w, int64_t k, const std::vector<int32_t>& perm) {
  std::vector<float> out(w.size());
#pragma omp parallel for schedule(static) if (w.size() > (size_t(1) << 20))
  for (int64_t i = 0; i < int64_t(perm.size()); ++i)
    std::memcpy(&out[size_t(i) * size_t(k)], &w[size_t(perm[size_t(i)]) * size_t(k)], size_t(k) * sizeof(float));
  return out;
}

bool is_row_parallel(LinearSlot s) { return s == LinearSlot::O || s == LinearSlot::Down; }

// Channel reorder within each of S contiguous slices (S = 1: the plain reorder), so a row-parallel
// shard keeps its own channels and picks its own outliers among them.
std::vector<int32_t> segmented_reorder(const std::vector<double>& sumsq, int S) {
  const size_t ks = sumsq.size() / size_t(S);
  std::vector<int32_t> out;
  out.reserve(sumsq.size());
  for (int j = 0; j < S; ++j) {
    const std::vector<double> sub(sumsq.begin() + long(j * ks), sumsq.begin() + long((j + 1) * ks));
    for (int32_t i : reorder_by_magnitude(sub)) out.push_back(int32_t(j * ks) + i);
  }
  return out;
}

// Columns [c0, c0 + kc) of a row-major [n, k] matrix.
template <typename T>
std::vector<T> column_block(const T* w, int64_t n, int64_t k, int64_t c0, int64_t kc) {
  std::vector<T> out(size_t(n * kc));
  for (int64_t i = 0; i < n; ++i) std::memcpy(&out[size_t(i * kc)], w + i * k + c0, size_t(kc) * sizeof(T));
  return out;
}

// The Atom weights of one linear (or one K-segment of it): w_r [n, k] in reordered column order,
// h_r its reordered Hessian (empty without GPTQ / clip search), perm the reorder.
// The GPTQ solve runs on `backend` (its time added to *gptq_s).
std::unique_ptr<AtomLinear> quantize_atom_linear(const std::vector<float>& w_r, int64_t n, int64_t k,
                                                 const std::vector<double>& h_r, std::vector<int32_t> perm,
                                                 AtomConfig ac, const QuantConfig& cfg, float* clip_used,
                                                 QuantBackend& backend, double* gptq_s) {
  if (cfg.w_clip_search && !cfg.gptq) ac.w_clip = search_weight_clip(w_r.data(), n, k, h_r.data(), perm, ac).best_clip;
  *clip_used = ac.w_clip;
  if (cfg.gptq) {
    const auto t0 = std::chrono::steady_clock::now();
    AtomWeights w = backend.gptq(w_r.data(), n, k, h_r.data(), std::move(perm), ac).weights;
    *gptq_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_unique<AtomLinear>(std::move(w));
  }
  return std::make_unique<AtomLinear>(atom_quantize_rtn_reordered(w_r.data(), n, k, std::move(perm), ac));
}

void check_segments(const ModelConfig& c, const QuantConfig& cfg) {
  const int S = cfg.tp_segments;
  if (S == 1) return;
  ATOM_CHECK(c.num_heads % S == 0 && c.num_kv_heads % S == 0 && c.intermediate_size % S == 0,
             "tp segments {}: must divide the head counts ({} query, {} kv) and the FFN size {}", S, c.num_heads,
             c.num_kv_heads, c.intermediate_size);
  if (cfg.method == "atom")
    ATOM_CHECK(cfg.atom.n_outlier % S == 0, "tp segments {}: must divide the outlier count {}", S,
               cfg.atom.n_outlier);
}

double relative_output_error(const Linear& q, const std::vector<float>& w, const std::vector<float>& x, int64_t k,
                             int64_t n) {
  const int64_t m = int64_t(x.size()) / k;
  if (m == 0) return 0;
  std::vector<float> yq(size_t(m * n)), y(size_t(m * n));
  q.forward(x.data(), m, yq.data());
  DenseLinear(k, n, w).forward(x.data(), m, y.data());
  double num = 0, den = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    num += double(yq[i] - y[i]) * (yq[i] - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// The parts kept in 16 bits (embeddings, lm_head; with method fp16 every linear too) are stored
// as fp16 by the checkpoint. Rounding them here, before calibration, makes the in-memory model
// exactly the one the checkpoint holds (a saved and reloaded model computes bit-identical logits)
// and calibrates on the embeddings the quantized model will really use. Norms stay fp32 (stored F32).
void round_16bit_parts(LlamaModel& model, bool all_linears) {
  auto round_all = [](std::vector<float>& v) {
    for (float& x : v) x = fp16_round(x);
  };
  round_all(model.embed);
  if (auto* d = dynamic_cast<DenseLinear*>(model.lm_head.get())) round_all(d->mutable_weight());
  if (all_linears)
    for (LlamaLayer& L : model.layers)
      for (auto& lin : L.linear)
        if (auto* d = dynamic_cast<DenseLinear*>(lin.get())) round_all(d->mutable_weight());
}

}  // namespace

QuantizeReport quantize_model(LlamaModel& model, const std::vector<std::vector<int32_t>>& windows,
                              const QuantConfig& cfg, const std::function<void(int, int)>& on_layer,
                              QuantBackend* backend_in) {
  cfg.validate();
  ATOM_CHECK(!windows.empty(), "quantize: no calibration windows");
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  QuantizeReport report;
  round_16bit_parts(model, cfg.method == "fp16");
  if (cfg.method == "fp16") return report;
  const ModelConfig& c = model.cfg;
  check_segments(c, cfg);
  const int64_t H = c.hidden_size, T = int64_t(windows[0].size()), S = int64_t(windows.size());
  for (const auto& w : windows)
    ATOM_CHECK(int64_t(w.size()) == T, "quantize: calibration windows differ in length");
  const bool atom = cfg.method == "atom";
  const bool need_hessian = atom && (cfg.gptq || cfg.w_clip_search);
  std::unique_ptr<QuantBackend> own;
  if (!backend_in) own = make_cpu_quant_backend();
  QuantBackend& backend = backend_in ? *backend_in : *own;
  report.backend = backend.name();
  double& gptq_s = report.stage_seconds["gptq"];
  double& pass1_s = report.stage_seconds["pass1"];
  double& pass2_s = report.stage_seconds["pass2"];

  // The residual stream of every calibration window lives in the backend, carried block to block
  // through the quantized model.
  auto tp = clock::now();
  model.kv_store_hook = nullptr;  // calibrate on fp KV; the format is set below
  backend.begin(model, windows);
  report.stage_seconds["embed"] = since(tp);
  report.calib_tokens = S * T;

  for (int l = 0; l < c.num_layers; ++l) {
    LlamaLayer& L = model.layers[size_t(l)];
    // --- pass 1: statistics of this block's four inputs (inputs from quantized earlier blocks) ---
    tp = clock::now();
    BlockStats st = backend.block_stats(model, l, need_hessian);
    pass1_s += since(tp);

    // --- quantize the seven linears ---
    std::unique_ptr<Linear> q[kNumLinearSlots];
    float clip_used[kNumLinearSlots] = {};
    std::vector<float> w_ref[kNumLinearSlots];  // the fp32 weight each quantized layer approximates
    if (atom) {
      std::vector<int32_t> perm[kNumInputKinds];
      for (int k = 0; k < kNumInputKinds; ++k) {
        const bool row_par = k == int(InputKind::O) || k == int(InputKind::Down);
        perm[k] = segmented_reorder(st.in[k].sumsq, row_par ? cfg.tp_segments : 1);
      }
      // down_proj's reorder is free: gate/up produce their output rows already in down's order.
      const std::vector<int32_t> down_perm = perm[int(InputKind::Down)];
      for (LinearSlot s : {LinearSlot::Gate, LinearSlot::Up})
        L.linear[int(s)] = std::make_unique<DenseLinear>(
            H, c.intermediate_size, permute_rows(dense(L, s).weight(), H, down_perm));
      {
        const auto& wd = dense(L, LinearSlot::Down).weight();
        L.linear[int(LinearSlot::Down)] = std::make_unique<DenseLinear>(
            c.intermediate_size, H, permute_columns(wd.data(), H, c.intermediate_size, down_perm));
      }
      std::vector<double> h_kind[kNumInputKinds];
      std::vector<int32_t> identity(size_t(c.intermediate_size));
      for (size_t i = 0; i < identity.size(); ++i) identity[i] = int32_t(i);
      // The error rows of down's input must follow the new channel order too.
      {
        auto& rows = st.rows[int(InputKind::Down)];
        const int64_t F = c.intermediate_size, m = int64_t(rows.size()) / F;
        std::vector<float> r(rows.size());
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < F; ++j) r[size_t(i * F + j)] = rows[size_t(i * F + down_perm[size_t(j)])];
        rows.swap(r);
      }

      for (int s = 0; s < kNumLinearSlots; ++s) {
        const InputKind kind = input_kind(LinearSlot(s));
        const DenseLinear& d = dense(L, LinearSlot(s));
        const int64_t N = d.out_features(), K = d.in_features();
        // Down's columns were permuted above; its Hessian is taken in that order.
        const bool is_down = kind == InputKind::Down;
        const std::vector<int32_t>& p = is_down ? identity : perm[int(kind)];
        const std::vector<float> w_r = permute_columns(d.weight().data(), N, K, p);
        // q/k/v (and gate/up) share one Hessian: permuted once, freed after the last linear using it.
        std::vector<double>& h_r = h_kind[int(kind)];
        if (need_hessian && h_r.empty()) h_r = st.in[int(kind)].hessian(is_down ? down_perm : p);
        const int S = is_row_parallel(LinearSlot(s)) ? cfg.tp_segments : 1;
        if (S == 1) {
          q[s] = quantize_atom_linear(w_r, N, K, h_r, p, cfg.atom, cfg, &clip_used[s], backend, &gptq_s);
        } else {  // S independent segments along K, each with its own outliers and groups
          const int64_t ks = K / S;
          AtomConfig ac = cfg.atom;
          ac.n_outlier /= S;
          std::vector<std::unique_ptr<Linear>> segs;
          for (int j = 0; j < S; ++j) {
            std::vector<int32_t> pj(p.begin() + long(j * ks), p.begin() + long((j + 1) * ks));
            for (int32_t& v : pj) v -= int32_t(j * ks);
            std::vector<double> hj;
            if (need_hessian) hj = column_block(&h_r[size_t(j * ks * K)], ks, K, j * ks, ks);
            segs.push_back(quantize_atom_linear(column_block(w_r.data(), N, K, j * ks, ks), N, ks, hj,
                                                std::move(pj), ac, cfg, &clip_used[s], backend, &gptq_s));
          }
          q[s] = std::make_unique<SegmentedLinear>(std::move(segs));
        }
        w_ref[s] = d.weight();
        if (s + 1 == kNumLinearSlots || input_kind(LinearSlot(s + 1)) != kind) {  // last user of this input
          std::vector<double>().swap(h_r);
          std::vector<double>().swap(st.in[int(kind)].xtx);
        }
      }
    } else {  // w8a8: SmoothQuant, one smoothing vector per shared input
      for (int kind = 0; kind < kNumInputKinds; ++kind) {
        std::vector<float> wmax(size_t(st.in[kind].k), 0.0f);
        for (int s = 0; s < kNumLinearSlots; ++s)
          if (int(input_kind(LinearSlot(s))) == kind) {
            const DenseLinear& d = dense(L, LinearSlot(s));
            weight_column_absmax(d.weight().data(), d.out_features(), d.in_features(), wmax.data());
          }
        auto smooth = smoothquant_factors(st.in[kind].absmax.data(), wmax.data(), st.in[kind].k, cfg.smooth_alpha);
        for (int s = 0; s < kNumLinearSlots; ++s)
          if (int(input_kind(LinearSlot(s))) == kind) {
            const DenseLinear& d = dense(L, LinearSlot(s));
            const int64_t N = d.out_features(), K = d.in_features();
            const int S = is_row_parallel(LinearSlot(s)) ? cfg.tp_segments : 1;
            if (S == 1) {
              q[s] = std::make_unique<W8A8Linear>(w8a8_quantize(d.weight().data(), N, K, smooth));
            } else {  // per-token activation scales then span one segment (one TP rank's slice)
              std::vector<std::unique_ptr<Linear>> segs;
              const int64_t ks = K / S;
              for (int j = 0; j < S; ++j) {
                const std::vector<float> sj(smooth.begin() + long(j * ks), smooth.begin() + long((j + 1) * ks));
                segs.push_back(std::make_unique<W8A8Linear>(
                    w8a8_quantize(column_block(d.weight().data(), N, K, j * ks, ks).data(), N, ks, sj)));
              }
              q[s] = std::make_unique<SegmentedLinear>(std::move(segs));
            }
            w_ref[s] = d.weight();
          }
      }
    }
    for (int s = 0; s < kNumLinearSlots; ++s) L.linear[s] = std::move(q[s]);
    // The per-linear error reports (host) only read the quantized linears: with a device backend they run
    // while pass 2 does, instead of after it.
    auto error_reports = [&] {
      std::array<double, kNumLinearSlots> err{};
      for (int s = 0; s < kNumLinearSlots; ++s) {
        const Linear& lin = *L.linear[s];
        err[size_t(s)] = relative_output_error(lin, w_ref[s], st.rows[int(input_kind(LinearSlot(s)))],
                                               lin.in_features(), lin.out_features());
      }
      return err;
    };
    std::future<std::array<double, kNumLinearSlots>> errors;
    if (backend.host_free_during_advance()) errors = std::async(std::launch::async, error_reports);

    // --- pass 2: this block's outputs through its quantized linears (and quantized KV) ---
    tp = clock::now();
    apply_kv_format(model, cfg);
    backend.advance(model, l);
    model.kv_store_hook = nullptr;
    pass2_s += since(tp);
    const std::array<double, kNumLinearSlots> err = errors.valid() ? errors.get() : error_reports();
    for (int s = 0; s < kNumLinearSlots; ++s)
      report.linears.push_back({l, linear_slot_name(LinearSlot(s)), err[size_t(s)], clip_used[s]});
    if (on_layer) on_layer(l + 1, c.num_layers);
  }
  apply_kv_format(model, cfg);
  for (const auto& [k, v] : backend.extra_timings()) report.stage_seconds[k] = v;
  report.seconds = since(t0);
  double timed = 0;
  for (const char* k : {"embed", "pass1", "pass2", "gptq"}) timed += report.stage_seconds[k];
  report.stage_seconds["host"] = std::max(0.0, report.seconds - timed);
  return report;
}

}  // namespace atom::quant
