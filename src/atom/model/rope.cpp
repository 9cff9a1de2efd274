#include "atom/model/rope.h"

#include <cmath>

namespace atom {

std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  const int half = cfg.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    inv[size_t(i)] = 1.0f / std::pow(cfg.rope_theta, float(2 * i) / float(cfg.head_dim));
  const RopeScaling& s = cfg.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) {
    for (float& f : inv) f /= s.factor;
  } else if (s.type == RopeScaling::Type::Llama3) {
    // Llama-3.1: long wavelengths are slowed by `factor`, short ones kept, a smooth blend between.
    const float old_ctx = float(s.original_max_position_embeddings);
    const float low_wavelen = old_ctx / s.low_freq_factor;
    const float high_wavelen = old_ctx / s.high_freq_factor;
    for (float& f : inv) {
      const float wavelen = 2.0f * float(M_PI) / f;
      if (wavelen < high_wavelen) continue;
      if (wavelen > low_wavelen) {
        f /= s.factor;
      } else {
        const float smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}

void rope_apply(float* x, int n_heads, int head_dim, const float* inv_freq, int pos) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];  // fp32 product, as transformers
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + size_t(h) * size_t(head_dim);
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

}  // namespace atom
