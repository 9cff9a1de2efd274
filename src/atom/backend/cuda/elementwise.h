// Small elementwise kernels of the GPU model (gpu_model.cpp): embedding lookup, RoPE + q/k/v split,
// residual add, and the seeded fills that generate synthetic weights on the device.
#pragma once
#include <cstdint>

#include "atom/backend/cuda/device.h"

namespace atom::cuda {

// x[t, :] = float(embed[tokens[t], :]) (fp16 table [vocab, H]); token ids checked on the host.
void embed_rows(const uint16_t* embed, const int32_t* tokens, int64_t T, int64_t H, float* x, cudaStream_t s);

// qkv [T, (nh + 2·nkv)·hd] fp16 (the stacked q/k/v GEMM's output) -> q [T, nh·hd] and k [T, nkv·hd] rotated
// at pos[t] (HF rotate-half RoPE, angle = float(pos)·inv_freq[i] in fp32 as model/rope.cpp), v copied.
void rope_split(const uint16_t* qkv, const int32_t* pos, const float* inv_freq, int64_t T, int nh, int nkv, int hd,
                uint16_t* q, uint16_t* k, uint16_t* v, cudaStream_t s);

// x += y (fp32, n elements).
void add_f32(float* x, const float* y, int64_t n, cudaStream_t s);

// Seeded pseudo-random fills (a hash of the index: the same seed gives the same data on any launch).
void fill_uniform_f16(uint16_t* p, int64_t n, uint64_t seed, float lo, float hi, cudaStream_t s);  // never 0
void fill_uniform_f32(float* p, int64_t n, uint64_t seed, float lo, float hi, cudaStream_t s);
// bytes & mask, with 0x80 (INT8 -128) replaced by 0x81 when `no_int8_min`.
void fill_random_bytes(void* p, int64_t n, uint64_t seed, uint8_t mask, bool no_int8_min, cudaStream_t s);

}  // namespace atom::cuda
