// The CUDA quantization backend (quant_backend_gpu.h): one decoder block of the calibration passes on
// the GPU, over every window's residual stream kept on the device.
#include "atom/backend/cuda/quant_backend_gpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "atom/backend/cuda/blas_handle.h"
#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/elementwise.h"
#include "atom/backend/cuda/gptq_gpu.h"
#include "atom/backend/cuda/quant_calib_kernels.h"
#include "atom/core/error.h"
#include "atom/model/segmented_linear.h"
#include "atom/quant/atom_linear.h"
#include "atom/quant/w8a8_linear.h"

namespace atom::cuda {
namespace {

using quant::InputKind;

// y[m, n] = a[m, k] (row stride lda) · w[n, k]ᵀ + beta·y, fp32 (cuBLAS column-major: yᵀ = w · aᵀ).
void sgemm_nt(cublasHandle_t h, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* w,
              float* y, float beta) {
  const float one = 1.0f;
  ATOM_CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(m), int(k), &one, w, int(k), a, int(lda),
                                &beta, y, int(n)));
}

// One linear of a block on the device, computing what its host layer computes (see the header).
struct DevLinear {
  enum class Act { None, Atom, W8A8 };
  struct Part {  // one K-segment [off, off + k) of the input (the whole input unless segmented)
    int64_t off = 0, k = 0;
    Act act = Act::None;
    DeviceBuffer<float> w;         // [n, k] fp32, original column order (dequantized when quantized)
    DeviceBuffer<int32_t> perm;    // Atom reorder
    calib::AtomActQuant aq;        // Atom activation rounding (aq.perm = perm)
    DeviceBuffer<float> smooth;    // W8A8 smoothing factors (empty: none)
  };
  int64_t n = 0, k = 0;
  std::vector<Part> parts;

  // y[m, n] = layer(x[m, k]); ws: scratch for >= m·k floats.
  void forward(cublasHandle_t h, const float* x, int64_t m, float* y, float* ws, cudaStream_t s) const {
    for (size_t i = 0; i < parts.size(); ++i) {
      const Part& p = parts[i];
      const float* a = x + p.off;
      int64_t lda = k;
      if (p.act == Act::Atom) calib::atom_act_fake_quant(a, k, m, p.aq, ws, s);
      if (p.act == Act::W8A8) calib::w8a8_act_fake_quant(a, k, m, p.k, p.smooth.size() ? p.smooth.data() : nullptr, ws, s);
      if (p.act != Act::None) {
        a = ws;
        lda = p.k;
      }
      sgemm_nt(h, m, n, p.k, a, lda, p.w.data(), y, i == 0 ? 0.0f : 1.0f);  // segments summed in order
    }
  }
};

void upload_part(const Linear& lin, int64_t off, DevLinear::Part& p, cudaStream_t s) {
  p.off = off;
  p.k = lin.in_features();
  if (auto* d = dynamic_cast<const DenseLinear*>(&lin)) {
    p.w.upload(d->weight(), s);
  } else if (auto* a = dynamic_cast<const quant::AtomLinear*>(&lin)) {
    const quant::AtomWeights& aw = a->weights();
    p.w.upload(aw.dequantize(), s);
    if (aw.config.a_bits == 4) {  // a_bits 16: fp32 activations times the dequantized weight
      const quant::AtomLayout& L = a->layout();
      p.act = DevLinear::Act::Atom;
      p.perm.upload(aw.perm, s);
      p.aq.perm = p.perm.data();
      p.aq.k = L.k;
      p.aq.k_normal = L.k_normal;
      p.aq.group = L.group > 0 ? L.group : 1;
      p.aq.n_groups = L.n_groups;
      p.aq.n_outlier = L.n_outlier;
      p.aq.int8_outliers = L.int8_outliers;
      p.aq.a_clip = aw.config.a_clip;
      p.aq.a_outlier_clip = aw.config.a_outlier_clip;
    }
  } else if (auto* w8 = dynamic_cast<const quant::W8A8Linear*>(&lin)) {
    const quant::W8A8Weights& ww = w8->weights();
    const int64_t n = ww.out_features, k = ww.in_features;
    std::vector<float> w(size_t(n * k));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t j = 0; j < k; ++j) w[size_t(r * k + j)] = float(ww.w_int8[size_t(r * k + j)]) * ww.w_scale[size_t(r)];
    p.w.upload(w, s);
    p.act = DevLinear::Act::W8A8;
    if (!ww.smooth.empty()) p.smooth.upload(ww.smooth, s);
  } else {
    fail("quantize --device cuda: the GPU calibration forward has no '{}' layer (dense, atom-w4a4, w8a8 and "
         "segmented ones only); use --device cpu",
         lin.kind());
  }
}

DevLinear upload_linear(const Linear& lin, cudaStream_t s) {
  DevLinear d;
  d.n = lin.out_features();
  d.k = lin.in_features();
  if (auto* seg = dynamic_cast<const SegmentedLinear*>(&lin)) {
    d.parts.resize(size_t(seg->num_segments()));
    for (int i = 0; i < seg->num_segments(); ++i) upload_part(seg->segment(i), seg->segment_offset(i), d.parts[size_t(i)], s);
  } else {
    d.parts.resize(1);
    upload_part(lin, 0, d.parts[0], s);
  }
  return d;
}

// Statistics of one input kind on the device (InputStats' fields).
struct DevStats {
  int64_t k = 0, rows = 0;
  bool hessian = false;
  DeviceBuffer<double> sumsq, xtx;
  DeviceBuffer<unsigned> absmax;  // float bits
  std::vector<float> keep;        // the first kErrorRows rows (host)

  DevStats(int64_t channels, bool with_hessian, cudaStream_t s) : k(channels), hessian(with_hessian) {
    sumsq.resize(size_t(k));
    sumsq.fill_bytes(0, s);
    absmax.resize(size_t(k));
    absmax.fill_bytes(0, s);  // +0.0f
    if (hessian) {
      xtx.resize(size_t(k * k));
      xtx.fill_bytes(0, s);
    }
  }
};

int64_t k_of(const LlamaLayer& L, InputKind kind) {
  for (int s = 0; s < kNumLinearSlots; ++s)
    if (quant::input_kind(LinearSlot(s)) == kind) return L.linear[s]->in_features();
  return 0;
}

class GpuQuantBackend final : public quant::QuantBackend {
 public:
  GpuQuantBackend(int device, bool tf32_forward) : tf32_(tf32_forward) {
    ATOM_CHECK(device_count() > 0, "quantize --device cuda: no CUDA device is visible");
    ATOM_CHECK(device >= 0 && device < device_count(), "quantize --device cuda: no CUDA device {} ({} visible)", device,
               device_count());
    ATOM_CUDA_CHECK(cudaSetDevice(device));
    stream_ = std::make_unique<Stream>();
    blas_ = std::make_unique<BlasHandle>(stream_->get());
    set_forward_math();
  }

  std::string name() const override { return tf32_ ? "cuda-tf32" : "cuda"; }
  bool host_free_during_advance() const override { return true; }

  void begin(const LlamaModel& model, const std::vector<std::vector<int32_t>>& windows) override {
    ATOM_CHECK(!windows.empty(), "quantize: no calibration windows");
    const ModelConfig& c = model.cfg;
    ATOM_CHECK(!model.reduce_partial, "quantize --device cuda: the model has a tensor-parallel hook (use one rank)");
    ATOM_CHECK(c.head_dim % 2 == 0, "quantize --device cuda: head_dim {} is odd", c.head_dim);
    H_ = c.hidden_size;
    T_ = int64_t(windows[0].size());
    S_ = int64_t(windows.size());
    cudaStream_t s = *stream_;
    const int64_t qd = int64_t(c.num_heads) * c.head_dim, kvd = int64_t(c.num_kv_heads) * c.head_dim;
    const int64_t F = c.intermediate_size, kmax = std::max({H_, qd, F});
    const int64_t bytes = 4 * (S_ * T_ * H_ + T_ * (3 * H_ + 2 * qd + 2 * kvd + 2 * F + kmax) + int64_t(c.num_heads) * T_ * T_);
    size_t free_b = 0, total_b = 0;
    ATOM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    ATOM_CHECK(bytes < int64_t(free_b), "quantize --device cuda: {} windows x {} tokens need {:.1f} GiB of activations "
               "on the GPU, {:.1f} GiB are free; lower --samples or --seqlen", S_, T_, double(bytes) / (1 << 30),
               double(free_b) / (1 << 30));
    X_.resize(size_t(S_ * T_ * H_));
    std::vector<float> host(size_t(T_ * H_));
    for (int64_t w = 0; w < S_; ++w) {
      ATOM_CHECK(int64_t(windows[size_t(w)].size()) == T_, "quantize: calibration windows differ in length");
      model.embed_tokens(windows[size_t(w)].data(), T_, host.data());
      ATOM_CUDA_CHECK(cudaMemcpyAsync(X_.data() + w * T_ * H_, host.data(), host.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, s));
      stream_->sync();  // `host` is refilled next
    }
    for (auto* b : {&xn_, &tmp_, &x1_}) b->resize(size_t(T_ * H_));
    for (auto* b : {&q_, &att_}) b->resize(size_t(T_ * qd));
    for (auto* b : {&k_, &v_}) b->resize(size_t(T_ * kvd));
    for (auto* b : {&gate_, &up_}) b->resize(size_t(T_ * F));
    ws_.resize(size_t(T_ * kmax));
    scores_.resize(size_t(int64_t(c.num_heads) * T_ * T_));
    inv_freq_.upload(model.rope_inv_freq, s);
  }

  quant::BlockStats block_stats(LlamaModel& model, int l, bool hessian) override {
    const LlamaLayer& L = model.layers[size_t(l)];
    cudaStream_t s = *stream_;
    const Block B = upload_block(L);
    std::vector<std::unique_ptr<DevStats>> st;
    int64_t kmax2 = 0;
    for (int kind = 0; kind < quant::kNumInputKinds; ++kind) {
      const int64_t k = k_of(L, InputKind(kind));
      st.push_back(std::make_unique<DevStats>(k, hessian, s));
      kmax2 = std::max(kmax2, k * k);
    }
    if (hessian) part_.resize(size_t(kmax2));
    const Observer obs = [&](InputKind kind, const float* x, int64_t m) { observe(*st[size_t(kind)], x, m); };
    for (int64_t w = 0; w < S_; ++w) {
      ATOM_CUDA_CHECK(cudaMemcpyAsync(x1_.data(), X_.data() + w * T_ * H_, x1_.bytes(), cudaMemcpyDeviceToDevice, s));
      run_block(model, B, x1_.data(), &obs, /*kv_bits=*/16);
    }
    quant::BlockStats out = quant::make_block_stats(L, hessian);
    for (int kind = 0; kind < quant::kNumInputKinds; ++kind) {
      DevStats& d = *st[size_t(kind)];
      quant::InputStats& in = out.in[kind];
      in.rows = d.rows;
      in.sumsq = d.sumsq.download(s);
      const std::vector<unsigned> bits = d.absmax.download(s);
      for (int64_t j = 0; j < d.k; ++j) std::memcpy(&in.absmax[size_t(j)], &bits[size_t(j)], sizeof(float));
      if (hessian) in.xtx = d.xtx.download(s);
      out.rows[kind] = std::move(d.keep);
    }
    if (hessian) part_.reset();
    return out;
  }

  void advance(const LlamaModel& model, int l) override {
    int kv_bits = 16;
    if (model.kv_store_hook) {
      ATOM_CHECK(model.kv_bits == 4 || model.kv_bits == 8,
                 "quantize --device cuda: a KV hook other than the KV formats (kv_bits {})", model.kv_bits);
      kv_bits = model.kv_bits;
    }
    const Block B = upload_block(model.layers[size_t(l)]);
    for (int64_t w = 0; w < S_; ++w) run_block(model, B, X_.data() + w * T_ * H_, nullptr, kv_bits);
    stream_->sync();
  }

  quant::GptqResult gptq(const float* w_r, int64_t n, int64_t k, const double* h_r, std::vector<int32_t> perm,
                         const quant::AtomConfig& cfg) override {
    return gptq_quantize_atom_gpu(w_r, n, k, h_r, std::move(perm), cfg, {}, *stream_);
  }

  std::vector<float> residual(int64_t w) const override {
    ATOM_CHECK(w >= 0 && w < S_, "residual: window {} of {}", w, S_);
    std::vector<float> out(size_t(T_ * H_));
    ATOM_CUDA_CHECK(cudaMemcpyAsync(out.data(), X_.data() + w * T_ * H_, out.size() * sizeof(float),
                                    cudaMemcpyDeviceToHost, *stream_));
    stream_->sync();
    return out;
  }

  std::map<std::string, double> extra_timings() const override { return {{"hessian", hessian_s_}}; }

 private:
  // fp32 SGEMM (CUBLAS_DEFAULT_MATH: no TF32), or TF32 tensor cores with tf32_forward
  void set_forward_math() {
    ATOM_CUBLAS_CHECK(cublasSetMathMode(blas_->h, tf32_ ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  }

  struct Block {
    DevLinear lin[kNumLinearSlots];
    DeviceBuffer<float> attn_norm, ffn_norm;
  };
  using Observer = std::function<void(InputKind, const float*, int64_t)>;

  Block upload_block(const LlamaLayer& L) {
    Block b;
    for (int s = 0; s < kNumLinearSlots; ++s) b.lin[s] = upload_linear(*L.linear[s], *stream_);
    b.attn_norm.upload(L.attn_norm, *stream_);
    b.ffn_norm.upload(L.ffn_norm, *stream_);
    return b;
  }

  // InputStats::add on the device, plus the first kErrorRows rows kept on the host.
  void observe(DevStats& d, const float* x, int64_t m) {
    cudaStream_t s = *stream_;
    calib::column_stats(x, m, d.k, d.sumsq.data(), d.absmax.data(), s);
    if (d.hessian) {
      h0_.record(s);
      // Row-major XᵀX upper triangle = column-major lower: SYRK of the column-major [k, m] matrix xᵀ.
      const float one = 1.0f, zero = 0.0f;
      ATOM_CUBLAS_CHECK(cublasSetMathMode(blas_->h, CUBLAS_DEFAULT_MATH));  // the SYRK never on TF32
      ATOM_CUBLAS_CHECK(cublasSsyrk(blas_->h, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, int(d.k), int(m), &one, x, int(d.k),
                                    &zero, part_.data(), int(d.k)));
      set_forward_math();
      calib::accumulate_upper(d.xtx.data(), part_.data(), d.k, s);
      h1_.record(s);
      hessian_s_ += 1e-3 * double(h1_.since(h0_));  // device time of the SYRK + accumulation
    }
    const int64_t have = int64_t(d.keep.size()) / d.k, take = std::min(m, quant::kErrorRows - have);
    if (take > 0) {
      d.keep.resize(size_t((have + take) * d.k));
      ATOM_CUDA_CHECK(cudaMemcpyAsync(d.keep.data() + have * d.k, x, size_t(take * d.k) * sizeof(float),
                                      cudaMemcpyDeviceToHost, s));
      stream_->sync();
    }
    d.rows += m;
  }

  // LlamaModel::forward_layer on x [T, H] in place, at positions 0..T-1 with a fresh cache. With an
  // observer (pass 1) the four linear inputs are observed and down_proj (whose output pass 1 does not
  // need) is skipped.
  void run_block(const LlamaModel& model, const Block& B, float* x, const Observer* obs, int kv_bits) {
    const ModelConfig& c = model.cfg;
    cudaStream_t s = *stream_;
    cublasHandle_t h = blas_->h;
    const int64_t T = T_, H = H_, F = c.intermediate_size, hd = c.head_dim;
    const int nh = c.num_heads, nkv = c.num_kv_heads, group = nh / nkv;
    const int64_t qd = nh * hd, kvd = nkv * hd;
    auto linear = [&](LinearSlot slot, const float* in, float* out) {
      B.lin[int(slot)].forward(h, in, T, out, ws_.data(), s);
    };
    // --- attention block ---
    calib::rmsnorm(x, B.attn_norm.data(), xn_.data(), T, H, c.rms_norm_eps, s);
    if (obs) (*obs)(InputKind::QKV, xn_.data(), T);
    linear(LinearSlot::Q, xn_.data(), q_.data());
    linear(LinearSlot::K, xn_.data(), k_.data());
    linear(LinearSlot::V, xn_.data(), v_.data());
    auto kv_round = [&] {
      if (kv_bits == 16) return;
      calib::kv_fake_quant(k_.data(), T, kvd, nkv, int(hd), kv_bits, s);
      calib::kv_fake_quant(v_.data(), T, kvd, nkv, int(hd), kv_bits, s);
    };
    if (model.kv_hook_pre_rope) kv_round();
    calib::rope(q_.data(), T, qd, nh, int(hd), inv_freq_.data(), 0, s);
    calib::rope(k_.data(), T, kvd, nkv, int(hd), inv_freq_.data(), 0, s);
    if (!model.kv_hook_pre_rope) kv_round();
    // scores[h] = q_h · k_gᵀ / √hd for query head h = g·group + j, batched over the kv heads g (column-
    // major: scores[h]ᵀ [T_k, T_q] = k_g · q_hᵀ, which is row-major [T_q, T_k]).
    const float scale = 1.0f / std::sqrt(float(hd)), one = 1.0f, zero = 0.0f;
    for (int j = 0; j < group; ++j)
      ATOM_CUBLAS_CHECK(cublasSgemmStridedBatched(
          h, CUBLAS_OP_T, CUBLAS_OP_N, int(T), int(T), int(hd), &scale, k_.data(), int(kvd), hd, q_.data() + j * hd,
          int(qd), group * hd, &zero, scores_.data() + j * T * T, int(T), group * T * T, nkv));
    calib::causal_softmax(scores_.data(), nh, T, s);
    // att_h = P_h · v_g (column-major: att_hᵀ [hd, T] = v_gᵀ · P_hᵀ).
    for (int j = 0; j < group; ++j)
      ATOM_CUBLAS_CHECK(cublasSgemmStridedBatched(
          h, CUBLAS_OP_N, CUBLAS_OP_N, int(hd), int(T), int(T), &one, v_.data(), int(kvd), hd,
          scores_.data() + j * T * T, int(T), group * T * T, &zero, att_.data() + j * hd, int(qd), group * hd, nkv));
    if (obs) (*obs)(InputKind::O, att_.data(), T);
    linear(LinearSlot::O, att_.data(), tmp_.data());
    add_f32(x, tmp_.data(), T * H, s);
    // --- MLP block (SwiGLU) ---
    calib::rmsnorm(x, B.ffn_norm.data(), xn_.data(), T, H, c.rms_norm_eps, s);
    if (obs) (*obs)(InputKind::GateUp, xn_.data(), T);
    linear(LinearSlot::Gate, xn_.data(), gate_.data());
    linear(LinearSlot::Up, xn_.data(), up_.data());
    calib::silu_mul(gate_.data(), up_.data(), gate_.data(), T * F, s);
    if (obs) {
      (*obs)(InputKind::Down, gate_.data(), T);
      return;
    }
    linear(LinearSlot::Down, gate_.data(), tmp_.data());
    add_f32(x, tmp_.data(), T * H, s);
  }

  bool tf32_ = false;
  std::unique_ptr<Stream> stream_;
  std::unique_ptr<BlasHandle> blas_;
  int64_t H_ = 0, T_ = 0, S_ = 0;
  DeviceBuffer<float> X_;  // residual streams [S, T, H]
  DeviceBuffer<float> x1_, xn_, q_, k_, v_, att_, tmp_, gate_, up_, ws_, scores_, part_, inv_freq_;
  Event h0_, h1_;
  double hessian_s_ = 0;
};

}  // namespace

std::unique_ptr<quant::QuantBackend> make_gpu_quant_backend(int device, bool tf32_forward) {
  return std::make_unique<GpuQuantBackend>(device, tf32_forward);
}

}  // namespace atom::cuda
