// bench_fused: the fused activation kernels (fused_quant.h) against a device-to-device copy of the
// same bytes (bytes = input read once + outputs written once), and the W8A8 GEMM (cuBLASLt INT8 +
// scale epilogue) against cuBLAS FP16 on the Llama-2-7B shapes; then whole-model step times of the
// synthetic GPU model (gpu_model.h) in the three modes. Median of event-timed batches; inputs rotated
// over copies larger than L2. Prints a table; --json FILE writes the records.
//   bench_fused [--json FILE] [--model llama2-7b] [--no-model] [--only M,K,CASE] (one fused case, for ncu:
//   CASE is a substring of its name, e.g. "reorder")
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "atom/backend/cuda/elementwise.h"
#include "atom/backend/cuda/fused_quant.h"
#include "atom/backend/cuda/gpu_model.h"
#include "atom/backend/cuda/w8a8_gemm.h"
#include "bench_json.h"

using namespace atom::cuda;

namespace {

using atom::bench::time_ms;

struct Rec {
  std::string what;
  int64_t m, n, k;
  double ms, gbs, pct_copy;
};

}  // namespace

int main(int argc, char** argv) {
  std::string json, model = "llama2-7b";
  bool run_model = true;
  int64_t only_m = 0, only_k = 0;
  std::string only_case;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
    else if (!std::strcmp(argv[i], "--no-model")) run_model = false;
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      char name[64] = {};
      long long m = 0, k = 0;
      if (std::sscanf(argv[++i], "%lld,%lld,%63s", &m, &k, name) != 3) {
        std::fprintf(stderr, "bench_fused: --only wants M,K,CASE\n");
        return 2;
      }
      only_m = m, only_k = k, only_case = name, run_model = false;
    }
  }
  try {
    const DeviceProps props = device_props(0);
    std::printf("device: %s, %d SMs\n", props.name.c_str(), props.sm_count);
    Stream st;
    std::vector<Rec> recs;
    const int copies = 4;

    // ---- fused activation kernels vs a D2D copy of the same byte count ----
    std::printf("\n%-34s %6s %6s %9s %9s %8s\n", "fused kernel", "M", "K", "us", "GB/s", "vs copy");
    for (int64_t K : {4096, 11008}) {
      if (only_k && K != only_k) continue;
      const GpuAtomLayout L = make_gpu_layout(K, 128, 128);
      for (int64_t M : {16, 256, 4096}) {
        if (only_m && M != only_m) continue;
        std::vector<DeviceBuffer<float>> x32(copies);
        std::vector<DeviceBuffer<uint16_t>> x16(copies);
        for (int c = 0; c < copies; ++c) {
          x32[size_t(c)].resize(static_cast<size_t>(M * 2 * K));
          x16[size_t(c)].resize(static_cast<size_t>(M * 2 * K));
          fill_uniform_f32(x32[size_t(c)].data(), M * 2 * K, 11 + c, -2.0f, 2.0f, st);
          fill_uniform_f16(x16[size_t(c)].data(), M * 2 * K, 21 + c, -2.0f, 2.0f, st);
        }
        DeviceBuffer<float> w(static_cast<size_t>(K));
        fill_uniform_f32(w.data(), K, 5, 0.5f, 1.5f, st);
        std::vector<int32_t> perm(static_cast<size_t>(K));
        for (int64_t j = 0; j < K; ++j) perm[size_t(j)] = int32_t(j);
        for (int64_t j = K - 1; j > 0; --j) std::swap(perm[size_t(j)], perm[size_t((j * 2654435761u) % uint64_t(j + 1))]);
        DeviceBuffer<uint16_t> dstage;
        dstage.upload(atom_stage_table(perm, L), st);
        GpuAtomActs acts;
        acts.resize(M, L);
        DeviceBuffer<int8_t> i8(static_cast<size_t>(M * K));
        DeviceBuffer<float> i8s(static_cast<size_t>(M));
        DeviceBuffer<uint16_t> f16(static_cast<size_t>(M * K));
        FusedOut atom_o;
        atom_o.atom = &acts;
        atom_o.stage = dstage.data();
        atom_o.L = L;
        FusedOut w8_o;
        w8_o.i8 = i8.data();
        w8_o.i8_scale = i8s.data();
        w8_o.smooth = w.data();
        const int64_t atom_out = M * (L.q4_row_bytes() + 2 * L.n_groups + L.n_outlier + 2);
        struct Case {
          const char* name;
          int64_t in_bytes, out_bytes;
          std::function<void(int)> fn;
        };
        std::vector<Case> cases = {
            {"rmsnorm+atom quant (fp32 in)", M * K * 4, atom_out,
             [&](int i) { rmsnorm_quant(x32[size_t(i % copies)].data(), ActDtype::F32, M, K, w.data(), 1e-5f, atom_o, st); }},
            {"rmsnorm+atom quant (fp16 in)", M * K * 2, atom_out,
             [&](int i) { rmsnorm_quant(x16[size_t(i % copies)].data(), ActDtype::F16, M, K, w.data(), 1e-5f, atom_o, st); }},
            {"reorder+atom quant (fp16 in)", M * K * 2, atom_out,
             [&](int i) { reorder_quant(x16[size_t(i % copies)].data(), ActDtype::F16, M, K, atom_o, st); }},
            {"silu*up+atom quant (fp16 in)", M * K * 4, atom_out,
             [&](int i) { silu_mul_quant(x16[size_t(i % copies)].data(), ActDtype::F16, M, K, atom_o, st); }},
            {"rmsnorm+w8a8 quant (fp32 in)", M * K * 4, M * (K + 4),
             [&](int i) { rmsnorm_quant(x32[size_t(i % copies)].data(), ActDtype::F32, M, K, w.data(), 1e-5f, w8_o, st); }},
        };
        for (const Case& c : cases) {
          if (!only_case.empty() && std::string(c.name).find(only_case) == std::string::npos) continue;
          const double ms = time_ms(st, c.fn);
          const int64_t bytes = c.in_bytes + c.out_bytes;
          // the copy of the same bytes: read bytes/2, write bytes/2
          const size_t half = size_t(bytes / 2);
          const double cms = time_ms(st, [&](int i) {
            ATOM_CUDA_CHECK(cudaMemcpyAsync(x16[size_t((i + 1) % copies)].data(), x32[size_t(i % copies)].data(),
                                            std::min(half, x16[0].bytes()), cudaMemcpyDeviceToDevice, st));
          });
          const double gbs = double(bytes) / ms / 1e6, cgbs = double(2 * std::min(half, x16[0].bytes())) / cms / 1e6;
          std::printf("%-34s %6lld %6lld %9.2f %9.0f %7.0f%%\n", c.name, (long long)M, (long long)K, ms * 1e3, gbs,
                      100.0 * gbs / cgbs);
          recs.push_back({c.name, M, 0, K, ms, gbs, 100.0 * gbs / cgbs});
        }
      }
    }

    // ---- W8A8 GEMM (cuBLASLt INT8 + epilogue) vs cuBLAS FP16 ----
    if (!only_case.empty()) return 0;
    BlasBaselines blas;
    std::printf("\n%-34s %6s %6s %6s %9s %9s\n", "W8A8 vs fp16 GEMM", "M", "N", "K", "us w8a8", "us fp16");
    for (auto [n, k] : std::vector<std::pair<int64_t, int64_t>>{{4096, 4096}, {11008, 4096}, {4096, 11008}}) {
      for (int64_t M : {1, 16, 256, 4096}) {
        GpuW8A8Weights gw;
        gw.n = n;
        gw.k = k;
        gw.w.resize(static_cast<size_t>(n * k));
        gw.scale.resize(static_cast<size_t>(n));
        fill_random_bytes(gw.w.data(), n * k, 3, 0xFF, true, st);
        fill_uniform_f32(gw.scale.data(), n, 4, 1e-3f, 2e-3f, st);
        DeviceBuffer<int8_t> x(static_cast<size_t>(M * k));
        DeviceBuffer<float> sx(static_cast<size_t>(M));
        DeviceBuffer<int32_t> acc(static_cast<size_t>(M * n));
        DeviceBuffer<uint16_t> y(static_cast<size_t>(M * n)), x16(static_cast<size_t>(M * k)), w16(static_cast<size_t>(n * k));
        fill_random_bytes(x.data(), M * k, 6, 0xFF, true, st);
        fill_uniform_f32(sx.data(), M, 7, 1e-2f, 2e-2f, st);
        fill_uniform_f16(x16.data(), M * k, 8, -1.0f, 1.0f, st);
        fill_uniform_f16(w16.data(), n * k, 9, -0.02f, 0.02f, st);
        const double a = time_ms(st, [&](int) { w8a8_gemm(blas, x.data(), sx.data(), M, gw, acc.data(), {y.data(), nullptr, false}, st); });
        const double b = time_ms(st, [&](int) { blas.gemm_fp16(x16.data(), w16.data(), y.data(), int(M), int(n), int(k), st); });
        std::printf("%-34s %6lld %6lld %6lld %9.1f %9.1f\n", "w8a8 (LtInt8+epi) / cublas fp16", (long long)M,
                    (long long)n, (long long)k, a * 1e3, b * 1e3);
        recs.push_back({"w8a8_gemm", M, n, k, a, 0, 0});
        recs.push_back({"cublas_fp16", M, n, k, b, 0, 0});
      }
    }

    // ---- whole-model steps on a synthetic model ----
    if (run_model) {
      std::printf("\n%-14s %-6s %6s %10s %12s\n", "model", "mode", "batch", "ms/step", "tokens/s");
      for (GpuMode mode : {GpuMode::Fp16, GpuMode::W8A8, GpuMode::Atom}) {
        GpuModelOptions o;
        o.max_tokens = 2048;
        o.max_seqs = 64;
        o.max_blocks_per_seq = 128;
        o.kv_pages = 64 * 40;  // 20 GiB of fp16 KV for llama2-7b
        auto g = GpuLlamaModel::synthetic(model, mode, 1, o);
        std::printf("%s\n", g->summary().c_str());
        std::vector<float> logits(static_cast<size_t>(256) * size_t(g->config().vocab_size));
        for (int B : {1, 16, 64}) {
          // decode step at position 512 for B sequences (their KV pages hold whatever was written before)
          std::vector<std::vector<int32_t>> bt(static_cast<size_t>(B));
          std::vector<int32_t> tok(static_cast<size_t>(B), 7);
          std::vector<SeqStep> batch;
          for (int b = 0; b < B; ++b) {
            for (int j = 0; j < 33; ++j) bt[size_t(b)].push_back(b * 40 + j);
            batch.push_back({b, &tok[size_t(b)], 1, 512, bt[size_t(b)].data(), 33, true});
          }
          const double ms = time_ms(st, [&](int) { g->step(batch, logits.data()); });
          std::printf("%-14s %-6s %6d %10.2f %12.0f\n", model.c_str(), gpu_mode_name(mode), B, ms, B / ms * 1e3);
          recs.push_back({std::string("decode-step ") + model + " " + gpu_mode_name(mode), B, 0, 0, ms, 0, 0});
        }
        // prefill: one sequence of 2048 tokens
        std::vector<int32_t> toks(2048, 9), bt1;
        for (int j = 0; j < 128; ++j) bt1.push_back(j);
        const double ms = time_ms(st, [&](int) { g->step({{0, toks.data(), 2048, 0, bt1.data(), 128, true}}, logits.data()); });
        std::printf("%-14s %-6s %6s %10.2f %12.0f\n", model.c_str(), gpu_mode_name(mode), "pf2048", ms, 2048 / ms * 1e3);
        recs.push_back({std::string("prefill-2048 ") + model + " " + gpu_mode_name(mode), 2048, 0, 0, ms, 0, 0});
      }
    }

    if (!json.empty()) {
      nlohmann::json j = {{"device", props.name}, {"records", nlohmann::json::array()}};
      for (const auto& r : recs)
        j["records"].push_back({{"what", r.what}, {"m", r.m}, {"n", r.n}, {"k", r.k}, {"ms", r.ms}, {"gbs", r.gbs},
                                {"pct_copy", r.pct_copy}});
      if (!atom::bench::write_json(json, j)) throw std::runtime_error("cannot write " + json);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_fused: %s\n", e.what());
    return 1;
  }
  return 0;
}
