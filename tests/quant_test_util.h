// Shared helpers for the model / quantization tests (they need the model library, so they live
// apart from the header-only test_util.h).
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "atom/model/llama.h"

namespace atom::test {

// Logits [n, vocab] of a fresh forward pass over `toks` (buffers start as NaN so that anything
// forward()/logits() leave unwritten shows up).
inline std::vector<float> logits_of(const LlamaModel& m, const std::vector<int32_t>& toks) {
  constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
  const int64_t n = int64_t(toks.size());
  KVCache cache(m.cfg, n);
  std::vector<float> h(size_t(n * m.cfg.hidden_size), kNaN), lg(size_t(n * m.cfg.vocab_size), kNaN);
  m.forward(toks.data(), n, cache, h.data());
  m.logits(h.data(), n, lg.data());
  return lg;
}

}  // namespace atom::test
