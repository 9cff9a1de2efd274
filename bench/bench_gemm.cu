// bench_gemm: Atom W4A4+O128 GEMM vs cuBLAS FP16, cuBLASLt INT8 (W8A8, scales in an epilogue) and
// cuBLASLt FP8 e4m3, on the Llama linear shapes of issue 4, M in {1..16384}; plus the fused activation
// quantizer vs a device-to-device copy. Median of batches of cudaEvent-timed launches, operands
// rotated over enough copies to exceed L2. Writes JSON (--json FILE).
//   bench_gemm [--json FILE] [--quick] [--ms 1,16,...] [--shapes N] [--diag (wgmma timing breakdown)]
//              [--only CFG,CFG,... (time only these forced configs, e.g. for ncu)] [--splits N (with --only)]
//              [--splits-sweep (config 23 at split-K 1, 2, 3, 4, 6, 8 beside auto)]
//              [--all-configs (also every superseded forced config: 2, 3, 7-10, 14, 17, 20, 21 and the decode-path
//               variants at M <= 64; without it the forced columns are 11, 19, 22, 23)]
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "atom/backend/cuda/atom_gemm.h"
#include "atom/backend/cuda/blas_baselines.h"
#include "atom/backend/cuda/device.h"
#include "bench_timing.h"
#include "bench_json.h"

using namespace atom::cuda;

namespace {

using atom::bench::time_ms;

__device__ __forceinline__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint32_t x = uint32_t(i) * 0x9E3779B1u ^ uint32_t(i >> 32) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
  x ^= x >> 15; x *= 0x2C1B3C6Du; x ^= x >> 12; x *= 0x297A2D39u; x ^= x >> 15;
  return x;
}
__global__ void fill_bytes_kernel(uint8_t* p, size_t n, uint32_t seed, uint8_t mask) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = uint8_t(hash32(i, seed)) & mask;
}
// fp16 values uniform in [lo, hi)
__global__ void fill_half_kernel(__half* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2half_rn(lo + (hi - lo) * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f));
}
__global__ void fill_float_kernel(float* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = lo + (hi - lo) * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f);
}
uint32_t g_seed = 12345;
template <class T>
void fill_bytes(DeviceBuffer<T>& b, uint8_t mask = 0xFF) {
  fill_bytes_kernel<<<1024, 256>>>(reinterpret_cast<uint8_t*>(b.data()), b.bytes(), g_seed++, mask);
  ATOM_CUDA_CHECK_LAUNCH();
}
void fill_half(DeviceBuffer<uint16_t>& b, float lo, float hi) {
  fill_half_kernel<<<1024, 256>>>(reinterpret_cast<__half*>(b.data()), b.size(), g_seed++, lo, hi);
  ATOM_CUDA_CHECK_LAUNCH();
}
void fill_float(DeviceBuffer<float>& b, float lo, float hi) {
  fill_float_kernel<<<1024, 256>>>(b.data(), b.size(), g_seed++, lo, hi);
  ATOM_CUDA_CHECK_LAUNCH();
}

size_t g_rotate_bytes = 0;  // 2.5 x L2
int copies_for(size_t bytes) { return int(std::clamp<size_t>((g_rotate_bytes + bytes - 1) / std::max<size_t>(bytes, 1), 1, 16)); }

struct Rec {
  std::string shape, method;
  int64_t m, n, k;
  double ms, tops, gbs;
};

struct ShapeDef {
  const char* name;
  int64_t k, n;
};

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  bool quick = false, diag = false;
  int nshapes = 0;  // --shapes N: only the first N shapes
  std::vector<int> only;  // --only: forced configs timed alone (no baselines)
  int only_splits = 0;
  bool splits_sweep = false, all_configs = false;
  std::vector<int64_t> mlist = {1, 16, 64, 256, 1024, 4096, 16384};
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--diag")) diag = true;
    else if (!std::strcmp(argv[i], "--splits-sweep")) splits_sweep = true;
    else if (!std::strcmp(argv[i], "--all-configs")) all_configs = true;
    else if (!std::strcmp(argv[i], "--splits") && i + 1 < argc) only_splits = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) only.push_back(std::atoi(t));
    }
    else if (!std::strcmp(argv[i], "--shapes") && i + 1 < argc) nshapes = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--ms") && i + 1 < argc) {
      mlist.clear();
      for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) mlist.push_back(std::atoll(t));
    }
  }
  try {
    const DeviceProps props = device_props(0);
    g_rotate_bytes = props.l2_bytes * 5 / 2;
    std::printf("device: %s, %d SMs, L2 %zu MB\n", props.name.c_str(), props.sm_count, props.l2_bytes >> 20);
    std::vector<ShapeDef> shapes = {{"L2-7B qkvo 4096->4096", 4096, 4096},   {"L2-7B up 4096->11008", 4096, 11008},
                                    {"L2-7B down 11008->4096", 11008, 4096}, {"L3-8B up 4096->14336", 4096, 14336},
                                    {"L3-8B down 14336->4096", 14336, 4096}, {"L2-70B up 8192->28672", 8192, 28672},
                                    {"L2-70B down 28672->8192", 28672, 8192}};
    if (quick) shapes.resize(2);
    if (nshapes > 0 && size_t(nshapes) < shapes.size()) shapes.resize(size_t(nshapes));
    Stream st;
    BlasBaselines blas;
    std::vector<Rec> recs;

    // ---- device-to-device copy ceiling ----
    double d2d_gbs = 0;
    {
      const size_t bytes = size_t(1) << 30;
      DeviceBuffer<uint8_t> a(bytes), b(bytes);
      fill_bytes(a);
      const double ms = time_ms(st, [&](int) { ATOM_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, st)); });
      d2d_gbs = 2.0 * bytes / ms * 1e-6;
      std::printf("D2D copy 1 GiB: %.3f ms, %.0f GB/s (read + write)\n", ms, d2d_gbs);
      recs.push_back({"d2d-copy-1GiB", "cudaMemcpy D2D", 0, 0, 0, ms, 0, d2d_gbs});
    }

    std::printf("\n%-26s %6s | %9s %9s %9s %9s %9s | %7s %7s %7s | %8s %6s\n", "shape", "M", "W4A4 us", "W4A4+q us",
                "FP16 us", "INT8 us", "FP8 us", "xFP16", "xINT8", "xFP8", "W4A4 TOPS", "GB/s");
    for (const ShapeDef& sd : shapes) {
      const int64_t K = sd.k, N = sd.n;
      const GpuAtomLayout L = make_gpu_layout(K, 128, 128);
      const size_t w4_bytes = size_t(N) * L.q4_row_bytes() + N * L.n_groups * 2 + N * L.n_outlier + N * 2;
      // Atom weights (rotated copies)
      const int wc = copies_for(w4_bytes);
      std::vector<GpuAtomWeights> aw(wc);
      for (auto& w : aw) {
        w.n = N; w.k = K; w.L = L;
        w.q4.resize(N * L.q4_row_bytes()); fill_bytes(w.q4);
        w.scale.resize(L.scale_elems(N)); fill_half(w.scale, 1e-3f, 1e-2f);
        w.q8.resize(N * L.n_outlier); fill_bytes(w.q8, 0x7F);
        w.oscale.resize(N); fill_half(w.oscale, 1e-3f, 1e-2f);
        std::vector<int32_t> perm(K);
        for (int64_t j = 0; j < K; ++j) perm[j] = int32_t((j * 7919) % K);  // a permutation when gcd(7919, K) = 1
        upload_atom_perm(perm, w, st);
      }
      // FP16 / INT8 / FP8 weights
      const int hc = copies_for(size_t(N) * K * 2), bc = copies_for(size_t(N) * K);
      std::vector<DeviceBuffer<uint16_t>> w16(hc);
      for (auto& w : w16) { w.resize(N * K); fill_half(w, -0.05f, 0.05f); }
      std::vector<DeviceBuffer<int8_t>> w8(bc);
      std::vector<DeviceBuffer<uint8_t>> wf8(bc);
      for (auto& w : w8) { w.resize(N * K); fill_bytes(w, 0x7F); }
      for (auto& w : wf8) { w.resize(N * K); fill_bytes(w, 0xBB); }
      DeviceBuffer<float> sw(N);
      fill_float(sw, 1e-3f, 1e-2f);

      for (int64_t M : mlist) {
        const double flops = 2.0 * M * N * K;
        // activations
        const size_t a4_bytes = size_t(M) * (L.q4_row_bytes() + L.n_groups * 2 + L.n_outlier + 2);
        const int ac = copies_for(a4_bytes), xc = copies_for(size_t(M) * K * 2), x8c = copies_for(size_t(M) * K);
        std::vector<GpuAtomActs> aa(ac);
        std::vector<DeviceBuffer<uint16_t>> x16(xc);
        for (auto& x : x16) { x.resize(M * K); fill_half(x, -2.0f, 2.0f); }
        for (auto& a : aa) {
          a.resize(M, L);
          atom_quantize_acts_fp16(x16[0].data(), M, aw[0].stage.data(), L, 0.9f, 1.0f, a, st);
        }
        std::vector<DeviceBuffer<int8_t>> x8(x8c);
        std::vector<DeviceBuffer<uint8_t>> xf8(x8c);
        for (auto& x : x8) { x.resize(M * K); fill_bytes(x, 0x7F); }
        for (auto& x : xf8) { x.resize(M * K); fill_bytes(x, 0xBB); }
        DeviceBuffer<float> sx(M);
        fill_float(sx, 1e-3f, 1e-2f);
        DeviceBuffer<uint16_t> y(M * N);
        DeviceBuffer<int32_t> acc(M * N);
        GpuAtomActs qa;  // quantizer output for the fused W4A4+quant column
        qa.resize(M, L);

        auto rec = [&](const char* method, double ms, double bytes) {
          recs.push_back({sd.name, method, M, N, K, ms, flops / ms * 1e-9, bytes / ms * 1e-6});
          return ms;
        };
        auto guarded = [&](const char* method, double bytes, const std::function<void(int)>& fn) -> double {
          try {
            return rec(method, time_ms(st, fn), bytes);
          } catch (const std::exception& e) {
            std::printf("  %s M=%lld: %s\n", method, (long long)M, e.what());
            (void)cudaGetLastError();
            return -1;
          }
        };
        if (!only.empty()) {  // the listed forced configs alone (profiling, A/B of one variant)
          for (int cfg : only) {
            const std::string name = "cfg-" + std::to_string(cfg) + (only_splits ? "-s" + std::to_string(only_splits) : "");
            const double t = guarded(name.c_str(), double(w4_bytes + a4_bytes + M * N * 2), [&](int i) {
              atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, cfg, only_splits);
            });
            std::printf("%-26s %6lld | %s %.1f us %.0f TOPS\n", sd.name, (long long)M, name.c_str(), t * 1e3,
                        t > 0 ? flops / t * 1e-9 : 0.0);
          }
          std::fflush(stdout);
          continue;
        }
        // Timed twice, the first discarded: the first method timed after the input fill above read 4-11% slower
        // than the same kernel forced later in the run, even after time_ms's 50 ms warm-up (results.md §5d).
        auto run_auto = [&](int i) { atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st); };
        try {
          (void)time_ms(st, run_auto);
        } catch (const std::exception&) {
          (void)cudaGetLastError();  // guarded() below reports it
        }
        const double t_atom = guarded("atom-w4a4", double(w4_bytes + a4_bytes + M * N * 2), run_auto);
        // the two large-M kernels forced, whatever auto dispatch picks: mma.sync 128x128 and wgmma
        const double t_mma = (M >= 256 && all_configs) ? guarded("atom-w4a4-mma", double(w4_bytes + a4_bytes + M * N * 2), [&](int i) {
          atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, 2);
        }) : -1;
        // one forced wgmma configuration (M >= 64 on an sm_90 device; -1 otherwise)
        // (legacy = superseded, timed with --all-configs only)
        auto forced = [&](const char* name, int config, bool legacy = false) {
          if (M < 64 || !atom_gemm_wgmma_available() || (legacy && !all_configs)) return -1.0;
          return guarded(name, double(w4_bytes + a4_bytes + M * N * 2), [&](int i) {
            atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, config);
          });
        };
        const double t_wg = forced("atom-w4a4-wgmma", atom_gemm_wgmma_config(), true);
        // the warp-specialized wgmma kernel (config 7) and its variants 8..11 (atom_gemm_ws.cu; 11 is the fallback
        // of the TMA kernel)
        const int ws = atom_gemm_ws_config();
        const double t_ws = forced("atom-w4a4-ws", ws, true);
        const double t_ws5 = forced("atom-w4a4-ws-5stage", ws + 1, true);
        const double t_wso = forced("atom-w4a4-ws-overlap", ws + 2, true);
        const double t_wsp = forced("atom-w4a4-ws-pipe", ws + 3, true);
        const double t_ws5o = forced("atom-w4a4-ws-5stage-overlap", ws + 4);
        const double t_wspp = forced("atom-w4a4-ws-pingpong", 14, true);
        const double t_wsss = forced("atom-w4a4-ws-sumsplits", 17, true);
        // the TMA-fed warp-specialized kernel (atom_gemm_tma.cu): A in registers (19, 22, 23) or in shared memory
        // (20, 21); 22 and 23 copy two groups per TMA box row, 23 (dispatched) with float2 column scales
        const double t_tma = forced("atom-w4a4-tma", 19);
        const double t_tmass = forced("atom-w4a4-tma-ss", 20, true);
        const double t_tmass2 = forced("atom-w4a4-tma-ss-scfirst", 21, true);
        const double t_tma22 = forced("atom-w4a4-tma-k2", 22);
        const double t_tma23 = forced("atom-w4a4-tma-k2-f2", 23);
        if (M >= 64 && atom_gemm_wgmma_available())
          std::printf("%-26s %6lld | forced us: ws-5s-ovl (11) %.1f | tma (19) %.1f | tma-k2 (22) %.1f | tma-k2-f2 (23) %.1f\n",
                      sd.name, (long long)M, t_ws5o * 1e3, t_tma * 1e3, t_tma22 * 1e3, t_tma23 * 1e3);
        // the decode path: the mma.sync kernels (configs 0: 16x64, 1: 64x64) and the overlapped warp-specialized
        // kernel forced at M <= 64, where auto dispatch switches from one to the other
        if (M <= 64 && all_configs) {
          const char* names[12] = {"atom-w4a4-mma16", "atom-w4a4-mma64", "atom-w4a4-ws-overlap", "diag-mma16-tiled",
                                   "diag-mma16-tiled-s1", "atom-w4a4-mma-swap64", "atom-w4a4-mma-swap128",
                                   "diag-mma16-5x2stages", "diag-mma16-4x4stages", "atom-w4a4-stream8", "atom-w4a4-stream16",
                                   "atom-w4a4-stream32"};
          const int cfgs[12] = {0, 1, ws + 2, 109, 109, 12, 13, 110, 111, 15, 16, 18};
          double t_small[12] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
          for (int c = 0; c < 12; ++c)
            if (c != 2 || atom_gemm_wgmma_available())
              t_small[c] = guarded(names[c], double(w4_bytes + a4_bytes + M * N * 2), [&](int i) {
                atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, cfgs[c], c == 4 ? 1 : 0);
              });
          std::printf("%-26s %6lld | decode path us: mma.sync 16x64 %.1f | mma.sync 64x64 %.1f | ws-overlap %.1f | "
                      "diag 16x64 with 64-row-block weights %.1f (no split-K %.1f) | A/B swapped 64x8 %.1f, 128x8 %.1f | "
                      "deeper rings 5x2 %.1f, 4x4 %.1f | streaming 8 / 16 / 32 tokens %.1f, %.1f, %.1f\n",
                      sd.name, (long long)M, t_small[0] * 1e3, t_small[1] * 1e3, t_small[2] * 1e3, t_small[3] * 1e3,
                      t_small[4] * 1e3, t_small[5] * 1e3, t_small[6] * 1e3, t_small[7] * 1e3, t_small[8] * 1e3,
                      t_small[9] * 1e3, t_small[10] * 1e3, t_small[11] * 1e3);
        }
        // diagnostics (wrong results, timing only): wgmma 128x128 without promotion / unpacking / both
        double t_diag[3] = {-1, -1, -1};
        if (diag && M >= 256 && atom_gemm_wgmma_available()) {
          const char* names[3] = {"diag-wgmma-nopromote", "diag-wgmma-nounpack", "diag-wgmma-mma-only"};
          for (int d = 0; d < 3 && M >= 1024; ++d)
            t_diag[d] = guarded(names[d], double(w4_bytes + a4_bytes + M * N * 2), [&](int i) {
              atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, 101 + d);
            });
          // a warp-specialized kernel without promotion / B unpacking / wgmma / wgmma and promotion: forced configs
          // first .. first + 3, timed as "diag-<kernel>-<mode>" and printed as one row
          auto diag_row = [&](const char* kernel, int first) {
            const char* modes[4] = {"nopromote", "nounpack", "nomma", "datamove"};
            double t[4];
            for (int d = 0; d < 4; ++d)
              t[d] = guarded(("diag-" + std::string(kernel) + "-" + modes[d]).c_str(), double(w4_bytes + a4_bytes + M * N * 2),
                             [&](int i) { atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, first + d); });
            std::printf("%-26s %6lld | %s diag us: no-promote %.1f no-unpack %.1f no-mma %.1f data-only %.1f\n", sd.name,
                        (long long)M, kernel, t[0] * 1e3, t[1] * 1e3, t[2] * 1e3, t[3] * 1e3);
          };
          diag_row("ws", 105);   // config 11
          diag_row("tma", 112);    // config 19
          diag_row("tma-k2", 118);  // config 23 (the dispatched kernel)
        }
        if (splits_sweep && M >= 64 && atom_gemm_wgmma_available()) {  // config 23's split-K count, forced
          const int counts[6] = {1, 2, 3, 4, 6, 8};
          std::printf("%-26s %6lld | tma split-K us:", sd.name, (long long)M);
          for (int c : counts) {
            const double t = guarded(("atom-w4a4-tma-s" + std::to_string(c)).c_str(), double(w4_bytes + a4_bytes + M * N * 2),
                                     [&](int i) { atom_gemm(aa[i % ac], aw[i % wc], y.data(), nullptr, nullptr, st, 23, c); });
            std::printf(" s%d %.1f", c, t * 1e3);
          }
          std::printf(" | auto %.1f\n", t_atom * 1e3);
        }
        const double t_atomq = guarded("atom-w4a4+quant", double(w4_bytes + M * K * 2 + M * N * 2), [&](int i) {
          atom_quantize_acts_fp16(x16[i % xc].data(), M, aw[i % wc].stage.data(), L, 0.9f, 1.0f, qa, st);
          atom_gemm(qa, aw[i % wc], y.data(), nullptr, nullptr, st);
        });
        const double t_q = guarded("act-quant", double(M * K * 2 + a4_bytes), [&](int i) {
          atom_quantize_acts_fp16(x16[i % xc].data(), M, aw[i % wc].stage.data(), L, 0.9f, 1.0f, qa, st);
        });
        const double t16 = guarded("cublas-fp16", 2.0 * (N * K + M * K + M * N), [&](int i) {
          blas.gemm_fp16(x16[i % xc].data(), w16[i % hc].data(), y.data(), int(M), int(N), int(K), st);
        });
        const double t8 = guarded("cublaslt-int8", double(N * K + M * K + 2 * M * N), [&](int i) {
          blas.gemm_int8(x8[i % x8c].data(), w8[i % bc].data(), sx.data(), sw.data(), acc.data(), y.data(), int(M),
                         int(N), int(K), st);
        });
        const double tf8 = guarded("cublaslt-fp8", double(N * K + M * K + 2 * M * N), [&](int i) {
          blas.gemm_fp8(xf8[i % x8c].data(), wf8[i % bc].data(), y.data(), int(M), int(N), int(K), st);
        });
        auto ratio = [&](double base) { return (t_atom > 0 && base > 0) ? base / t_atom : 0.0; };
        std::printf("%-26s %6lld | %9.1f %9.1f %9.1f %9.1f %9.1f | %7.2f %7.2f %7.2f | %8.0f %6.0f   quant %.1f us = %.0f GB/s (%.0f%% of D2D)\n",
                    sd.name, (long long)M, t_atom * 1e3, t_atomq * 1e3, t16 * 1e3, t8 * 1e3, tf8 * 1e3, ratio(t16),
                    ratio(t8), ratio(tf8), t_atom > 0 ? flops / t_atom * 1e-9 : 0.0,
                    t_atom > 0 ? double(w4_bytes + a4_bytes + M * N * 2) / t_atom * 1e-6 : 0.0, t_q * 1e3,
                    t_q > 0 ? double(M * K * 2 + a4_bytes) / t_q * 1e-6 : 0.0,
                    t_q > 0 ? 100.0 * double(M * K * 2 + a4_bytes) / t_q * 1e-6 / d2d_gbs : 0.0);
        auto r2 = [&](double base) { return (t_wg > 0 && base > 0) ? base / t_wg : 0.0; };
        if (t_wg > 0)  // (--all-configs)
          std::printf("%-26s %6lld | wgmma %8.1f us %5.0f TOPS | ws %8.1f us %5.0f TOPS | ws-5stage %8.1f | ws-overlap %8.1f | ws-pipe %8.1f | ws-5s-ovl %8.1f | ws-pingpong %8.1f | ws-sumsplits %8.1f | tma %8.1f | tma-ss %8.1f | tma-ss-scfirst %8.1f | mma.sync-128 %8.1f | "
                      "wgmma xFP16 %5.2f | ws xFP16 %5.2f xINT8 %5.2f xFP8 %5.2f | diag no-promote %.1f no-unpack %.1f mma-only %.1f us\n",
                      sd.name, (long long)M, t_wg * 1e3, flops / t_wg * 1e-9, t_ws * 1e3, t_ws > 0 ? flops / t_ws * 1e-9 : 0.0,
                      t_ws5 * 1e3, t_wso * 1e3, t_wsp * 1e3, t_ws5o * 1e3, t_wspp * 1e3, t_wsss * 1e3, t_tma * 1e3, t_tmass * 1e3, t_tmass2 * 1e3, t_mma * 1e3, r2(t16), t_ws > 0 ? t16 / t_ws : 0.0, t_ws > 0 ? t8 / t_ws : 0.0, t_ws > 0 ? tf8 / t_ws : 0.0,
                      t_diag[0] * 1e3, t_diag[1] * 1e3, t_diag[2] * 1e3);
        std::fflush(stdout);
      }
    }
    if (!json.empty()) {
      nlohmann::json j = {{"device", props.name}, {"d2d_gbs", d2d_gbs}, {"results", nlohmann::json::array()}};
      for (const Rec& r : recs)
        j["results"].push_back({{"shape", r.shape}, {"method", r.method}, {"m", r.m}, {"n", r.n}, {"k", r.k},
                                {"ms", r.ms}, {"tops", r.tops}, {"gbs", r.gbs}});
      if (!atom::bench::write_json(json, j)) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
