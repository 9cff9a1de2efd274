// Helpers shared by the GPU test files: device skip, fresh seeds, fp16 conversion, and the bit-exact
// comparison of GPU-layout Atom activations with the CPU quantizer's output.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/device.h"
#include "atom/core/half.h"
#include "atom/quant/atom_linear.h"

namespace gpu_test {

using namespace atom;
using namespace atom::cuda;

#define REQUIRE_GPU()                                                                                       \
  do {                                                                                                      \
    if (device_count() == 0)                                                                                \
      GTEST_SKIP() << "no CUDA device: GPU tests run in scripts/gpu-check.sh on the device machine";        \
  } while (0)

inline bool small_only() { return std::getenv("ATOM_GPU_TEST_SMALL") != nullptr; }

// A fresh seed per test, printed; ATOM_TEST_SEED=N replays one (a failure's printed seed).
inline uint64_t fresh_seed() {
  const char* env = std::getenv("ATOM_TEST_SEED");
  const uint64_t s = env ? std::strtoull(env, nullptr, 10)
                         : std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
  std::printf("seed %llu\n", (unsigned long long)s);
  return s;
}

inline std::vector<int32_t> random_perm(int64_t k, std::mt19937_64& rng) {
  std::vector<int32_t> p(static_cast<size_t>(k));
  std::iota(p.begin(), p.end(), 0);
  std::shuffle(p.begin(), p.end(), rng);
  return p;
}

// Random activations as fp16 values: gaussian rows with per-row scale, heavy channels (the outliers
// Atom reorders to the tail), an all-zero row and a row of tiny values (fp16 scale underflow).
inline std::vector<float> random_acts(int64_t m, int64_t k, std::mt19937_64& rng) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.1f, 4.0f);
  std::vector<float> x(static_cast<size_t>(m * k));
  std::vector<float> chan(static_cast<size_t>(k));
  for (auto& c : chan) c = (rng() % 16 == 0) ? 20.0f * ud(rng) : ud(rng);
  for (int64_t r = 0; r < m; ++r) {
    const float rs = (r % 7 == 3) ? 1e-4f : ud(rng);
    for (int64_t j = 0; j < k; ++j) {
      float v = (r % 11 == 5) ? 0.0f : nd(rng) * chan[size_t(j)] * rs;
      x[size_t(r * k + j)] = fp16_to_float(float_to_fp16(v));
    }
  }
  return x;
}

inline std::vector<uint16_t> to_fp16(const std::vector<float>& x) {
  std::vector<uint16_t> h(x.size());
  for (size_t i = 0; i < x.size(); ++i) h[i] = float_to_fp16(x[i]);
  return h;
}

// Compares GPU-layout activations with the CPU quantizer's output, bit for bit.
inline void expect_acts_equal(GpuAtomActs& g, const quant::AtomActivations& c, const GpuAtomLayout& L, int64_t m) {
  const auto q4 = g.q4.download();
  const auto sc = g.scale.download();
  const auto q8 = g.q8.download();
  const auto so = g.oscale.download();
  const auto q = unpack_int4_gpu(q4.data(), m, L);
  const int64_t kp = L.n_groups * 128, G = L.n_groups, Gt = G + (L.n_outlier > 0 ? 1 : 0);
  int64_t bad = 0;
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < kp; ++j) {
      const int8_t want = j < L.k_normal ? c.q[size_t(r * L.k + j)] : 0;
      if (q[size_t(r * kp + j)] != want && bad++ < 10)
        ADD_FAILURE() << "int4 r=" << r << " j=" << j << " gpu=" << int(q[size_t(r * kp + j)]) << " cpu=" << int(want);
    }
    for (int64_t g2 = 0; g2 < G; ++g2) {
      const float gs = fp16_to_float(sc[size_t(r * G + g2)]), cs = c.scale[size_t(r * Gt + g2)];
      if (std::memcmp(&gs, &cs, 4) != 0 && bad++ < 10) ADD_FAILURE() << "scale r=" << r << " g=" << g2 << " " << gs << " vs " << cs;
    }
    for (int64_t j = 0; j < L.n_outlier; ++j) {
      const int8_t a = q8[size_t(r * L.n_outlier + j)], b = c.q[size_t(r * L.k + L.k_normal + j)];
      if (a != b && bad++ < 10) ADD_FAILURE() << "int8 r=" << r << " j=" << j << " " << int(a) << " vs " << int(b);
    }
    if (L.n_outlier > 0) {
      const float gs = fp16_to_float(so[size_t(r)]), cs = c.scale[size_t(r * Gt + G)];
      if (std::memcmp(&gs, &cs, 4) != 0 && bad++ < 10) ADD_FAILURE() << "outlier scale r=" << r << " " << gs << " vs " << cs;
    }
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace gpu_test
