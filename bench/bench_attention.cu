// bench_attention: paged attention (issue 5) on the H100.
//   decode: batch {1,16,64,256} x context {512,2048,8192,32768} for Llama-2-7B (32 heads, MHA, d 128) and
//           Llama-3-8B (32 q / 8 kv heads, d 128), int4 / int8 / fp16 caches side by side; effective
//           bandwidth on bytes moved (K+V values, scales/zeros, Q, out, block tables) vs a device-to-device
//           copy measured in the same run;
//   prefill: causal prefill / chunked prefill TFLOPS vs cuBLAS FP16 GEMM TFLOPS measured in the same run.
// Median of batches of cudaEvent-timed launches; caches rotated over enough layers to exceed L2; random
// cache contents (valid scales), random page order. Combinations over ~85% of free memory are skipped
// with a note. Writes JSON (--json FILE).
//   bench_attention [--json FILE] [--quick] [--decode-only] [--prefill-only] [--split-sweep] [--page 16|32]
//                   [--groups-per-step 1|2] (the decode table's int8 / int4 kernel step width)
//                   [--rounds R] (the decode table R times over, caches in turn: median and spread per cell)
//                   [--prefill-kernel auto|mma|wgmma|wgmma-ws|wgmma-ws-tma] (the prefill table's kernel; auto: the
//                   library's choice)
//                   [--prefill-kv int4|int8|fp16] (the prefill table's cells of that cache only: one kernel to profile)
// --split-sweep: decode int4 / int8 at the shapes where the split heuristic matters most (short contexts, small
// batches), timed at every split count from 1 to 64 next to the automatic choice, for tuning it.
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "atom/backend/cuda/blas_baselines.h"
#include "atom/backend/cuda/device.h"
#include "bench_timing.h"
#include "atom/backend/cuda/paged_kv.h"
#include "bench_json.h"

using namespace atom::cuda;

namespace {

using atom::bench::time_ms;

__device__ __forceinline__ uint32_t hash32(uint64_t i, uint32_t seed) {
  uint32_t x = uint32_t(i) * 0x9E3779B1u ^ uint32_t(i >> 32) * 0x85EBCA77u ^ seed * 0xC2B2AE3Du;
  x ^= x >> 15; x *= 0x2C1B3C6Du; x ^= x >> 12; x *= 0x297A2D39u; x ^= x >> 15;
  return x;
}
__global__ void fill_half_kernel(__half* p, size_t n, uint32_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2half_rn(lo + (hi - lo) * (hash32(i, seed) >> 8) * (1.0f / 16777216.0f));
}
// Random cache contents with valid per-token scales (0.01..0.05) and zero points for int caches.
__global__ void fill_cache_kernel(PagedKvLayout L, uint8_t* pool, uint32_t seed) {
  const int64_t n_blocks = L.n_layers * L.n_pages * L.n_kv_heads;
  const int qmax = L.dtype == KvDtype::I4 ? 15 : 255;
  for (int64_t blk = blockIdx.x; blk < n_blocks; blk += gridDim.x) {
    uint8_t* p = pool + blk * L.block_bytes();
    if (L.dtype == KvDtype::F16) {
      auto* h = reinterpret_cast<__half*>(p);
      for (int64_t i = threadIdx.x; i < L.block_bytes() / 2; i += blockDim.x)
        h[i] = __float2half_rn(float(int(hash32(blk * 65536 + i, seed) % 2001) - 1000) * 1e-3f);
      continue;
    }
    for (int64_t i = threadIdx.x; i < 2 * L.values_bytes() / 4; i += blockDim.x)
      reinterpret_cast<uint32_t*>(p)[i] = hash32(blk * 65536 + i, seed);
    for (int i = threadIdx.x; i < L.page_size; i += blockDim.x) {
      const uint32_t r = hash32(blk * 65536 + 40000 + i, seed);
      reinterpret_cast<__half*>(p + L.k_scales())[i] = __float2half_rn(0.01f + 0.04f * (r & 1023) / 1024.0f);
      reinterpret_cast<__half*>(p + L.v_scales())[i] = __float2half_rn(0.01f + 0.04f * ((r >> 10) & 1023) / 1024.0f);
      p[L.k_zeros() + i] = uint8_t((r >> 20) % (qmax + 1));
      p[L.v_zeros() + i] = uint8_t((r >> 26) % (qmax + 1));
    }
  }
}

uint32_t g_seed = 777;
void fill_half(DeviceBuffer<uint16_t>& b, float lo, float hi) {
  fill_half_kernel<<<1024, 256>>>(reinterpret_cast<__half*>(b.data()), b.size(), g_seed++, lo, hi);
  ATOM_CUDA_CHECK_LAUNCH();
}

struct Model {
  const char* name;
  int n_heads, n_kv_heads, head_dim;
};
const char* dt_name(KvDtype d) { return d == KvDtype::F16 ? "fp16" : d == KvDtype::I8 ? "int8" : "int4"; }

// The kernel a prefill table ran on (kAuto resolved as paged_attention_prefill resolves it).
const char* table_kernel_name(PrefillKernel k) {
  if (k == PrefillKernel::kAuto) return device_runs_sm90a() ? "auto: wgmma-ws" : "auto: mma";
  return prefill_kernel_name(k);
}

struct Rec {
  std::string kind, model, dtype, note;
  int B = 0, ctx = 0, nq = 0;
  double ms = 0, gbs = 0, tflops = 0;
};

// A batch of B sequences of `ctx` keys in a cache of `layers` layers; random page order.
struct Setup {
  PagedKvCache cache;
  DeviceBuffer<int32_t> lens, cu_q, bt;
  DeviceBuffer<uint16_t> q, out;
  int max_blocks = 0;
  Setup(const Model& m, KvDtype dt, int B, int ctx, int nq, int layers, int page_size)
      : cache([&] {
          PagedKvSpec s;
          s.n_layers = layers; s.n_kv_heads = m.n_kv_heads; s.head_dim = m.head_dim; s.page_size = page_size;
          s.dtype = dt; s.n_pages = int64_t(B) * ((ctx + page_size - 1) / page_size);
          return s;
        }()) {
    max_blocks = (ctx + page_size - 1) / page_size;
    fill_cache_kernel<<<4096, 256>>>(cache.layout(), cache.data(), g_seed++);
    ATOM_CUDA_CHECK_LAUNCH();
    std::vector<int32_t> perm(size_t(cache.spec().n_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(g_seed++));
    bt.upload(perm);
    lens.upload(std::vector<int32_t>(size_t(B), ctx));
    std::vector<int32_t> cu(size_t(B) + 1);
    for (int b = 0; b <= B; ++b) cu[size_t(b)] = b * nq;
    cu_q.upload(cu);
    q.resize(size_t(B) * nq * m.n_heads * m.head_dim);
    fill_half(q, -1.0f, 1.0f);
    out.resize(q.size());
    ATOM_CUDA_CHECK(cudaDeviceSynchronize());
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  bool quick = false, do_decode = true, do_prefill = true, split_sweep = false;
  PrefillKernel prefill_kernel = PrefillKernel::kAuto;
  int page = 16, groups_per_step = 0, rounds = 1;  // groups_per_step 0: the library's default
  int prefill_kv = -1;                               // index into dts, -1: all three
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--decode-only")) do_prefill = false;
    else if (!std::strcmp(argv[i], "--prefill-only")) do_decode = false;
    else if (!std::strcmp(argv[i], "--split-sweep")) split_sweep = true;
    else if (!std::strcmp(argv[i], "--prefill-kernel") && i + 1 < argc) {
      if (!parse_prefill_kernel(argv[++i], prefill_kernel)) {
        std::fprintf(stderr, "bench_attention: --prefill-kernel must be auto, mma, wgmma, wgmma-ws or wgmma-ws-tma\n");
        return 2;
      }
    }
    else if (!std::strcmp(argv[i], "--page") && i + 1 < argc) page = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--groups-per-step") && i + 1 < argc) groups_per_step = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--prefill-kv") && i + 1 < argc) {
      const std::string v = argv[++i];
      prefill_kv = v == "int4" ? 0 : v == "int8" ? 1 : v == "fp16" ? 2 : -2;
      if (prefill_kv == -2) {
        std::fprintf(stderr, "bench_attention: --prefill-kv must be int4, int8 or fp16\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "bench_attention: unknown argument %s (see the header for the options)\n", argv[i]);
      return 2;
    }
  }
  if (rounds < 1 || rounds > 15) {
    std::fprintf(stderr, "bench_attention: --rounds must be in [1, 15]\n");
    return 2;
  }
  if (page != 16 && page != 32) {
    std::fprintf(stderr, "bench_attention: --page must be 16 or 32\n");
    return 2;
  }
  try {
    const DeviceProps props = device_props(0);
    const size_t rotate_bytes = props.l2_bytes * 5 / 2;
    std::printf("device: %s, %d SMs, L2 %zu MB\n", props.name.c_str(), props.sm_count, props.l2_bytes >> 20);
    Stream st;
    std::vector<Rec> recs;
    double d2d_gbs = 0, cublas_tflops = 0;
    {  // device-to-device copy ceiling (read + write bytes)
      const size_t bytes = size_t(1) << 30;
      DeviceBuffer<uint8_t> a(bytes), b(bytes);
      ATOM_CUDA_CHECK(cudaMemset(a.data(), 0x5A, bytes));
      const double ms = time_ms(st, [&](int) { ATOM_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, st)); });
      d2d_gbs = 2.0 * bytes / ms * 1e-6;
      std::printf("D2D copy 1 GiB: %.3f ms, %.0f GB/s (read + write)\n", ms, d2d_gbs);
      recs.push_back({"copy", "d2d 1GiB", "", "", 0, 0, 0, ms, d2d_gbs, 0});
    }
    {  // cuBLAS FP16 tensor-core rate
      BlasBaselines blas;
      const int n = 8192;
      DeviceBuffer<uint16_t> x(size_t(n) * n), w(size_t(n) * n), y(size_t(n) * n);
      fill_half(x, -1, 1);
      fill_half(w, -1, 1);
      const double ms = time_ms(st, [&](int) { blas.gemm_fp16(x.data(), w.data(), y.data(), n, n, n, st); });
      cublas_tflops = 2.0 * n * n * double(n) / ms * 1e-9;
      std::printf("cuBLAS FP16 GEMM 8192^3: %.3f ms, %.0f TFLOPS\n", ms, cublas_tflops);
      recs.push_back({"gemm", "cublas fp16 8192^3", "fp16", "", 0, 0, 0, ms, 0, cublas_tflops});
    }
    const std::vector<Model> models = {{"Llama-2-7B", 32, 32, 128}, {"Llama-3-8B", 32, 8, 128}};
    const KvDtype dts[] = {KvDtype::I4, KvDtype::I8, KvDtype::F16};

    if (do_decode) {
      std::printf("\ndecode (page %d, int8/int4 groups per step %s): time us | GB/s on bytes moved | %% of D2D copy\n", page,
                  groups_per_step > 0 ? std::to_string(groups_per_step).c_str() : "default");
      std::printf("%-11s %4s %6s | %9s %9s %9s | %7s %7s %7s | %5s %5s %5s | %6s%s\n", "model", "B", "ctx", "int4 us", "int8 us",
                  "fp16 us", "int4", "int8", "fp16", "%cp4", "%cp8", "%cp16", "x4/16", rounds > 1 ? " | spread 4/8/16 %" : "");
      const std::vector<int> Bs = quick ? std::vector<int>{16} : std::vector<int>{1, 16, 64, 256};
      const std::vector<int> ctxs = quick ? std::vector<int>{2048} : std::vector<int>{512, 2048, 8192, 32768};
      for (const Model& m : models)
        for (int B : Bs)
          for (int ctx : ctxs) {
            // --rounds R: the three caches are timed in turn, R times over (each round builds its caches
            // afresh); the table shows the median and the spread (max - min) / median of each column.
            std::vector<double> runs[3];
            double bytes[3] = {0, 0, 0};
            for (int round = 0; round < rounds; ++round)
              for (int di = 0; di < 3; ++di) {
                const KvDtype dt = dts[di];
                PagedKvLayout L{1, m.n_kv_heads, m.head_dim, page, dt, int64_t(B) * ((ctx + page - 1) / page)};
                const size_t layer_bytes = size_t(L.total_bytes());
                const int layers = int(std::clamp<size_t>((rotate_bytes + layer_bytes - 1) / layer_bytes, 1, 64));
                size_t free_b = 0, total_b = 0;
                ATOM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
                if (layer_bytes * layers > free_b * 0.85) {
                  if (round == 0) recs.push_back({"decode", m.name, dt_name(dt), "skipped: exceeds memory", B, ctx, 1, 0, 0, 0});
                  continue;
                }
                Setup su(m, dt, B, ctx, 1, layers, page);
                AttentionWorkspace ws(B, m.n_heads, m.head_dim);
                const float scale = 1.0f / std::sqrt(float(m.head_dim));
                runs[di].push_back(time_ms(st, [&](int i) {
                  paged_attention_decode(su.cache, i % layers, su.q.data(), su.lens.data(), su.bt.data(), su.max_blocks, B,
                                         m.n_heads, scale, su.out.data(), ws, st, 0, dt == KvDtype::F16 ? 0 : groups_per_step);
                }));
                // Bytes moved: every K/V value + scale/zero byte of the B*ctx tokens, Q, out, block tables.
                const double kv = double(B) * ctx * m.n_kv_heads * (L.block_bytes() / double(L.page_size));
                bytes[di] = kv + 2.0 * 2 * B * m.n_heads * m.head_dim + 4.0 * B * su.max_blocks;
              }
            double us[3] = {0, 0, 0}, gbs[3] = {0, 0, 0}, spread[3] = {0, 0, 0};
            for (int di = 0; di < 3; ++di) {
              if (runs[di].empty()) continue;
              std::vector<double> v = runs[di];
              std::sort(v.begin(), v.end());
              const double ms = v[v.size() / 2];
              us[di] = ms * 1e3;
              gbs[di] = bytes[di] / ms * 1e-6;
              spread[di] = 100.0 * (v.back() - v.front()) / ms;
              const std::string note = rounds > 1 ? "median of " + std::to_string(rounds) + " rounds, spread " +
                                                        std::to_string(int(std::lround(spread[di]))) + "%"
                                                  : "";
              recs.push_back({"decode", m.name, dt_name(dts[di]), note, B, ctx, 1, ms, gbs[di], 0});
            }
            auto pct = [&](int i) { return gbs[i] > 0 ? 100.0 * gbs[i] / d2d_gbs : 0.0; };
            // A cache that did not fit prints "-" (not 0) in each of its columns.
            auto cell = [](double v, int width, int prec, bool present) {
              char buf[32];
              if (present) std::snprintf(buf, sizeof buf, "%*.*f", width, prec, v);
              else std::snprintf(buf, sizeof buf, "%*s", width, "-");
              return std::string(buf);
            };
            const bool on[3] = {!runs[0].empty(), !runs[1].empty(), !runs[2].empty()};
            std::printf("%-11s %4d %6d |", m.name, B, ctx);
            for (int i = 0; i < 3; ++i) std::printf(" %s", cell(us[i], 9, 1, on[i]).c_str());
            std::printf(" |");
            for (int i = 0; i < 3; ++i) std::printf(" %s", cell(gbs[i], 7, 0, on[i]).c_str());
            std::printf(" |");
            for (int i = 0; i < 3; ++i) std::printf(" %s", cell(pct(i), 5, 0, on[i]).c_str());
            std::printf(" | %s", cell(on[0] && on[2] ? us[2] / us[0] : 0.0, 6, 2, on[0] && on[2]).c_str());
            if (rounds > 1) {
              std::printf(" |");
              for (int i = 0; i < 3; ++i) std::printf(" %s", cell(spread[i], 4, 0, on[i]).c_str());
            }
            std::printf("\n");
            std::fflush(stdout);
          }
    }

    if (split_sweep) {
      std::printf("\ndecode split sweep (page %d): us at num_splits = auto, then 1 2 3 4 6 8 12 16 24 32 48 64\n", page);
      const int splits[] = {0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
      struct S { int B, ctx; };
      const S shapes[] = {{16, 2048}, {16, 8192}, {64, 2048}, {256, 2048}};
      for (const Model& m : models)
        for (const S& sh : shapes)
          for (int di = 0; di < 2; ++di) {
            const KvDtype dt = dts[di];
            PagedKvLayout L{1, m.n_kv_heads, m.head_dim, page, dt, int64_t(sh.B) * ((sh.ctx + page - 1) / page)};
            const size_t layer_bytes = size_t(L.total_bytes());
            const int layers = int(std::clamp<size_t>((rotate_bytes + layer_bytes - 1) / layer_bytes, 1, 64));
            Setup su(m, dt, sh.B, sh.ctx, 1, layers, page);
            AttentionWorkspace ws(sh.B, m.n_heads, m.head_dim);
            const float scale = 1.0f / std::sqrt(float(m.head_dim));
            std::printf("%-11s %4d %6d %-4s |", m.name, sh.B, sh.ctx, dt_name(dt));
            double best = 1e30;
            int best_s = 0;
            for (int ns : splits) {
              if (ns > 0 && int64_t(sh.B) * m.n_heads * ns > ws.max_partials) { std::printf("      -"); continue; }
              const double ms = time_ms(st, [&](int i) {
                paged_attention_decode(su.cache, i % layers, su.q.data(), su.lens.data(), su.bt.data(), su.max_blocks,
                                       sh.B, m.n_heads, scale, su.out.data(), ws, st, ns);
              });
              std::printf(" %6.1f", ms * 1e3);
              if (ns > 0 && ms < best) { best = ms; best_s = ns; }
              recs.push_back({"decode-split", m.name, dt_name(dt), "splits=" + std::to_string(ns), sh.B, sh.ctx, 1, ms, 0, 0});
            }
            std::printf(" | best %d: %.1f us\n", best_s, best * 1e3);
            std::fflush(stdout);
          }
    }
    if (do_prefill) {
      std::printf("\nprefill (causal, page %d, %s kernel): TFLOPS (%% of cuBLAS FP16 %.0f TFLOPS)\n", page,
                  table_kernel_name(prefill_kernel), cublas_tflops);
      std::printf("%-11s %3s %6s %6s | %16s %16s %16s\n", "model", "B", "ctx", "chunk", "int4", "int8", "fp16");
      struct P { int B, ctx, nq; };
      const std::vector<P> shapes = quick ? std::vector<P>{{1, 4096, 4096}}
                                          : std::vector<P>{{1, 2048, 2048}, {1, 8192, 8192}, {4, 4096, 4096}, {1, 8192, 2048}};
      for (const Model& m : models)
        for (const P& p : shapes) {
          double tf[3] = {0, 0, 0};
          for (int di = 0; di < 3; ++di) {
            if (prefill_kv >= 0 && di != prefill_kv) continue;
            const KvDtype dt = dts[di];
            Setup su(m, dt, p.B, p.ctx, p.nq, 1, page);
            const float scale = 1.0f / std::sqrt(float(m.head_dim));
            const double ms = time_ms(st, [&](int) {
              paged_attention_prefill(su.cache, 0, su.q.data(), su.cu_q.data(), su.lens.data(), su.bt.data(), su.max_blocks,
                                      p.B, int64_t(p.B) * p.nq, m.n_heads, scale, su.out.data(), st, p.nq,
                                      prefill_kernel);
            });
            // Causal FLOPs actually needed: query at position pos sees pos+1 keys; QK^T and PV, 2 flops/MAC.
            double pairs = 0;
            for (int i = 0; i < p.nq; ++i) pairs += double(p.ctx - p.nq + i + 1);
            const double flops = 4.0 * m.head_dim * m.n_heads * pairs * p.B;
            tf[di] = flops / ms * 1e-9;
            recs.push_back({"prefill", m.name, dt_name(dt), "", p.B, p.ctx, p.nq, ms, 0, tf[di]});
          }
          auto cell = [&](double t) {
            char c[32];
            if (t > 0) std::snprintf(c, sizeof c, "%7.0f (%4.0f%%)", t, 100 * t / cublas_tflops);
            else std::snprintf(c, sizeof c, "%16s", "-");
            return std::string(c);
          };
          std::printf("%-11s %3d %6d %6d | %s %s %s\n", m.name, p.B, p.ctx, p.nq, cell(tf[0]).c_str(), cell(tf[1]).c_str(),
                      cell(tf[2]).c_str());
          std::fflush(stdout);
        }
    }
    for (const Rec& r : recs)
      if (!r.note.empty()) std::printf("note: %s %s %s B=%d ctx=%d %s\n", r.kind.c_str(), r.model.c_str(), r.dtype.c_str(), r.B, r.ctx, r.note.c_str());
    if (!json.empty()) {
      nlohmann::json j = {{"device", props.name}, {"d2d_gbs", d2d_gbs}, {"cublas_fp16_tflops", cublas_tflops},
                          {"prefill_kernel", table_kernel_name(prefill_kernel)}, {"results", nlohmann::json::array()}};
      for (const Rec& r : recs)
        j["results"].push_back({{"kind", r.kind}, {"model", r.model}, {"dtype", r.dtype}, {"B", r.B}, {"ctx", r.ctx},
                                {"nq", r.nq}, {"ms", r.ms}, {"gbs", r.gbs}, {"tflops", r.tflops}, {"note", r.note}});
      if (!atom::bench::write_json(json, j)) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
