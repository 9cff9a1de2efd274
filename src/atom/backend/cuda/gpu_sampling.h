// Sampling on the GPU (engine, issue 6 item 2), so a step hands the host R token ids instead of R x vocab
// floats: greedy argmax, and temperature / top-k / top-p draws with a counter-based RNG.
//
// A draw follows the CPU Sampler's order (model/sampler.h): z = logit / temperature, keep the top_k largest
// z, then the smallest set of the largest whose softmax mass reaches top_p, then draw from the kept mass.
// Instead of sorting, the kept set is "z >= threshold", each threshold found by bisection on z's ordered
// bits (32 block-wide counting / summing passes over the row), so ties at a threshold are all kept (the
// CPU keeps exactly top_k). The uniform draw u in [0, 1) is a hash of (seed, counter): a seeded request
// draws the same tokens whatever it is batched with, on the GPU (the CPU Sampler's mt19937 stream differs).
#pragma once
#include <cstdint>

#include "atom/backend/cuda/device.h"

namespace atom::cuda {

struct GpuRowSampling {
  float temperature = 0.0f;  // 0: greedy (argmax)
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off
  uint32_t pad_ = 0;
  uint64_t seed = 0;
  uint64_t counter = 0;      // index of the token being drawn (the request's generated-token count)
};

// ids[r] = argmax_j logits[r, j] for r < rows (the first index on ties, as std::max_element; NaN never wins).
void argmax_rows(const float* logits, int64_t rows, int64_t vocab, int32_t* ids, cudaStream_t s);

// ids[r] = a draw from row r with params[r] (device memory, `rows` entries).
void sample_rows(const float* logits, int64_t rows, int64_t vocab, const GpuRowSampling* params, int32_t* ids,
                 cudaStream_t s);

// The uniform draw in [0, 1) that sample_rows uses for (seed, counter) — host side, for tests.
double sampling_uniform(uint64_t seed, uint64_t counter);

}  // namespace atom::cuda
