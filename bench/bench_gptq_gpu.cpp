// bench_gptq_gpu: GPTQ on the GPU (gptq_gpu.h) for the seven linears of a Llama decoder block, wall
// time per call (host checks, uploads, chol(H⁻¹), the column walk, the lazy DGEMMs, download and packing)
// and the whole model's GPTQ time extrapolated over its layers (issue 6 item 5; calibration forward
// passes are not included). Synthetic inputs: W ~ N(0, 0.02²), H = diag(d) + V·Vᵀ/r with V random
// (rank r = 32), d log-normal: symmetric positive definite with a spread spectrum. Median of 3 calls.
//   bench_gptq_gpu [--shape llama2-7b|llama3-8b|llama2-13b] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "atom/backend/cuda/gptq_gpu.h"
#include "bench_json.h"

using namespace atom;

namespace {

struct Shape {
  const char* name;
  int64_t hidden, ffn, kv, layers;
};

std::vector<double> spd(int64_t k, std::mt19937_64& rng) {
  const int64_t r = 32;
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> v(size_t(k * r)), h(size_t(k * k), 0.0);
  for (double& x : v) x = nd(rng);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (int64_t a = 0; a < r; ++a) s += v[size_t(i * r + a)] * v[size_t(j * r + a)];
      h[size_t(i * k + j)] = s / double(r);
    }
  for (int64_t i = 0; i < k; ++i) h[size_t(i * k + i)] += std::exp(nd(rng));
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "llama2-7b", json;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else {
      std::fprintf(stderr, "usage: bench_gptq_gpu [--shape llama2-7b|llama3-8b|llama2-13b] [--json FILE]\n");
      return 2;
    }
  }
  const Shape shapes[] = {{"llama2-7b", 4096, 11008, 4096, 32}, {"llama3-8b", 4096, 14336, 1024, 32},
                          {"llama2-13b", 5120, 13824, 5120, 40}};
  const Shape* sh = nullptr;
  for (const Shape& s : shapes)
    if (shape == s.name) sh = &s;
  if (!sh) {
    std::fprintf(stderr, "bench_gptq_gpu: unknown shape %s\n", shape.c_str());
    return 2;
  }
  try {
    std::mt19937_64 rng(1);
    // (name, n = out features, k = in features, how many per block)
    struct Lin { const char* name; int64_t n, k, count; };
    const Lin lins[] = {{"q/o_proj", sh->hidden, sh->hidden, 2}, {"k/v_proj", sh->kv, sh->hidden, 2},
                        {"gate/up_proj", sh->ffn, sh->hidden, 2}, {"down_proj", sh->hidden, sh->ffn, 1}};
    double block_s = 0;
    nlohmann::json linears = nlohmann::json::array();
    std::printf("%s, GPTQ on the GPU (Atom: 128 INT8 outliers, group 128, block 128)\n", sh->name);
    for (const Lin& l : lins) {
      const std::vector<double> h = spd(l.k, rng);
      std::normal_distribution<float> nd(0.0f, 0.02f);
      std::vector<float> w(size_t(l.n * l.k));
      for (float& x : w) x = nd(rng);
      std::vector<int32_t> perm(static_cast<size_t>(l.k));
      std::iota(perm.begin(), perm.end(), 0);
      std::vector<double> t;
      for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        const quant::GptqResult r = cuda::gptq_quantize_atom_gpu(w.data(), l.n, l.k, h.data(), perm, quant::AtomConfig{});
        t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (!(r.loss > 0)) throw std::runtime_error("GPTQ loss is not positive");
      }
      std::sort(t.begin(), t.end());
      block_s += t[1] * double(l.count);
      std::printf("  %-13s %6lld x %6lld  %8.3f s  (x%lld per block)\n", l.name, (long long)l.n, (long long)l.k, t[1],
                  (long long)l.count);
      linears.push_back({{"linear", l.name}, {"n", l.n}, {"k", l.k}, {"seconds", t[1]}});
    }
    std::printf("per decoder block %.2f s, whole model (%lld layers) %.1f s = %.2f min\n", block_s,
                (long long)sh->layers, block_s * double(sh->layers), block_s * double(sh->layers) / 60.0);
    if (!json.empty()) {
      const nlohmann::json j = {{"shape", sh->name}, {"block_seconds", block_s},
                                {"model_seconds", block_s * double(sh->layers)}, {"linears", linears}};
      if (!atom::bench::write_json(json, j)) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gptq_gpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
