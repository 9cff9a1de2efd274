// The CPU quantization backend (quant_backend.h): the reference every other backend is tested against.
#include <algorithm>
#include <cstring>

#include "atom/core/error.h"
#include "atom/quant/quant_backend.h"

namespace atom::quant {

BlockStats make_block_stats(const LlamaLayer& L, bool hessian) {
  BlockStats st;
  for (int s = 0; s < kNumLinearSlots; ++s) {
    const InputKind kind = input_kind(LinearSlot(s));
    if (st.in[int(kind)].k == 0) st.in[int(kind)] = InputStats(L.linear[s]->in_features(), hessian);
  }
  return st;
}

namespace {

class CpuQuantBackend final : public QuantBackend {
 public:
  std::string name() const override { return "cpu"; }

  void begin(const LlamaModel& model, const std::vector<std::vector<int32_t>>& windows) override {
    ATOM_CHECK(!windows.empty(), "quantize: no calibration windows");
    H_ = model.cfg.hidden_size;
    T_ = int64_t(windows[0].size());
    S_ = int64_t(windows.size());
    X_.assign(size_t(S_ * T_ * H_), 0.0f);
    for (int64_t s = 0; s < S_; ++s) {
      ATOM_CHECK(int64_t(windows[size_t(s)].size()) == T_, "quantize: calibration windows differ in length");
      model.embed_tokens(windows[size_t(s)].data(), T_, &X_[size_t(s * T_ * H_)]);
    }
    cache_ = std::make_unique<KVCache>(model.cfg, T_);
  }

  BlockStats block_stats(LlamaModel& m, int l, bool hessian) override {
    BlockStats st = make_block_stats(m.layers[size_t(l)], hessian);
    m.observer = [&](int, LinearSlot slot, const float* x, int64_t rows, int64_t k) {
      if (slot == LinearSlot::K || slot == LinearSlot::V || slot == LinearSlot::Up) return;  // shared inputs
      const int kind = int(input_kind(slot));
      st.in[kind].add(x, rows);
      auto& keep = st.rows[kind];
      const int64_t have = int64_t(keep.size()) / k, take = std::min(rows, kErrorRows - have);
      if (take > 0) keep.insert(keep.end(), x, x + take * k);
    };
    struct Restore {  // the observer off and the KV hook back, also when forward_layer throws
      LlamaModel& m;
      KVStoreHook hook;
      ~Restore() {
        m.observer = nullptr;
        m.kv_store_hook = std::move(hook);
      }
    } restore{m, std::move(m.kv_store_hook)};
    m.kv_store_hook = nullptr;  // calibrate on fp KV
    std::vector<float> scratch(size_t(T_ * H_));
    for (int64_t s = 0; s < S_; ++s) {
      std::memcpy(scratch.data(), &X_[size_t(s * T_ * H_)], scratch.size() * sizeof(float));
      cache_->clear();
      m.forward_layer(l, scratch.data(), T_, *cache_);
    }
    return st;
  }

  void advance(const LlamaModel& model, int l) override {
    for (int64_t s = 0; s < S_; ++s) {
      cache_->clear();
      model.forward_layer(l, &X_[size_t(s * T_ * H_)], T_, *cache_);
    }
  }

  GptqResult gptq(const float* w_r, int64_t n, int64_t k, const double* h_r, std::vector<int32_t> perm,
                  const AtomConfig& cfg) override {
    return gptq_quantize_atom(w_r, n, k, h_r, std::move(perm), cfg);
  }

  std::vector<float> residual(int64_t s) const override {
    ATOM_CHECK(s >= 0 && s < S_, "residual: window {} of {}", s, S_);
    return {X_.begin() + long(s * T_ * H_), X_.begin() + long((s + 1) * T_ * H_)};
  }

 private:
  int64_t H_ = 0, T_ = 0, S_ = 0;
  std::vector<float> X_;  // residual streams [S, T, H]
  std::unique_ptr<KVCache> cache_;
};

}  // namespace

std::unique_ptr<QuantBackend> make_cpu_quant_backend() { return std::make_unique<CpuQuantBackend>(); }

}  // namespace atom::quant
