// Rotary position embedding, HF convention ("rotate_half": dimension i pairs with i + d/2).
// Frequencies follow the model config: plain, linear scaling, or Llama-3.1 ("llama3") scaling.
#pragma once
#include <vector>

#include "atom/model/config.h"

namespace atom {

// inv_freq[i] for i < head_dim/2, computed in fp32 as transformers does.
std::vector<float> rope_inv_freq(const ModelConfig& cfg);

// Rotates `n_heads` heads of `x` (row of n_heads*head_dim floats) in place at position `pos`.
void rope_apply(float* x, int n_heads, int head_dim, const float* inv_freq, int pos);

}  // namespace atom
