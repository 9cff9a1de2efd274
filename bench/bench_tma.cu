// bench_tma: how fast the bulk tensor copy engine (TMA) fills shared memory, by box shape and bytes in flight.
// Why: the W4A4 GEMM's data path alone (config 19 with neither wgmma nor promotion) moves 16 KB per SM per
// step in ~1,060 clocks at M = 4096 with L2 at 46% of its peak (results.md §14); its boxes are 128 rows of
// 64 bytes (one packed 128-deep INT4 group). This isolates the copies: one thread per CTA keeps `stages`
// boxes in flight on one mbarrier each, re-issuing a stage as soon as it lands, nothing else runs.
//   bench_tma [--json FILE] [--mb 16,256 (source sizes: L2-resident and not)] [--ctas-per-sm 1]
#include <cuda.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "atom/backend/cuda/device.h"
#include "atom/backend/cuda/ptx.cuh"
#include "atom/backend/cuda/tma.h"
#include "bench_timing.h"
#include "bench_json.h"

using namespace atom::cuda;

namespace {

// Box j of CTA b: a pseudo-random tile of the source (every CTA walks the whole tensor, as GEMM tiles re-read
// operands other CTAs read). `boxes` boxes per step, all on the stage's barrier.
__global__ void __launch_bounds__(32) tma_stream_kernel(const __grid_constant__ CUtensorMap map, int stages, int boxes,
                                                        int box_bytes, int box_cols, int box_rows, int tiles_x,
                                                        int tiles, int steps, uint32_t* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ uint8_t smem_raw[];
  uint8_t* smem = smem_raw + ((1024 - (ptx::smem_addr(smem_raw) & 1023)) & 1023);
  const int step_bytes = boxes * box_bytes;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + stages * step_bytes);
  if (threadIdx.x != 0) return;
  for (int s = 0; s < stages; ++s) ptx::mbar_init(full + s, 1);
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  uint32_t tile = (blockIdx.x * 2654435761u) % uint32_t(tiles);
  auto issue = [&](int j) {
    uint64_t* bar = full + j % stages;
    uint8_t* dst = smem + (j % stages) * step_bytes;
    ptx::mbar_arrive_expect_tx(bar, uint32_t(step_bytes));
    for (int b = 0; b < boxes; ++b) {
      tile = (tile + 40503u) % uint32_t(tiles);
      ptx::tma_load_2d(dst + b * box_bytes, &map, int(tile % tiles_x) * box_cols, int(tile / tiles_x) * box_rows, bar);
    }
  };
  for (int j = 0; j < stages && j < steps; ++j) issue(j);
  uint32_t acc = 0;
  for (int j = 0; j < steps; ++j) {
    ptx::mbar_wait(full + j % stages, (j / stages) & 1);
    acc += smem[(j % stages) * step_bytes + (j & 63)];
    if (j + stages < steps) issue(j + stages);
  }
  if (acc == 0xFFFFFFFFu) *sink = acc;  // (keeps the reads; never true for these data)
#endif
}

struct Row {
  int src_mb, box_cols, box_rows, boxes, stages, ctas_per_sm;
  const char* swizzle;
  double gbs, bytes_per_clk_sm;
};

}  // namespace

int main(int argc, char** argv) {
  std::string json;
  std::vector<int> mbs = {16, 256};
  int ctas_per_sm = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
    else if (!std::strcmp(argv[i], "--ctas-per-sm") && i + 1 < argc) ctas_per_sm = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--mb") && i + 1 < argc) {
      mbs.clear();
      for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) mbs.push_back(std::atoi(t));
    } else {
      std::fprintf(stderr, "usage: bench_tma [--json FILE] [--mb 16,256] [--ctas-per-sm N]\n");
      return 2;
    }
  }
  try {
    const DeviceProps props = device_props(0);
    int clock_khz = 0;
    ATOM_CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
    std::printf("device: %s, %d SMs, L2 %zu MB, SM clock %.0f MHz (max)\n", props.name.c_str(), props.sm_count,
                props.l2_bytes >> 20, clock_khz / 1e3);
    Stream st;
    DeviceBuffer<uint32_t> sink(1);
    std::vector<Row> rows;
    std::printf("%7s %5s %5s %6s %7s %8s %6s | %9s %12s\n", "src MB", "cols", "rows", "boxes", "stages", "in-flight",
                "swz", "GB/s", "B/clk/SM");
    for (int mb : mbs) {
      const uint64_t pitch = 8192, nrows = uint64_t(mb) * (1 << 20) / pitch;
      DeviceBuffer<uint8_t> src(pitch * nrows);
      ATOM_CUDA_CHECK(cudaMemsetAsync(src.data(), 0x5A, src.bytes(), st));
      struct Cfg {
        int cols, rows, boxes;
        TmaSwizzle sw;
        const char* name;
      };
      // 64 x 128 x 2: the GEMM's step (packed A and B of one group); 128-byte rows: a step of two groups
      const Cfg cfgs[] = {{64, 128, 2, TmaSwizzle::k64B, "64B"},    {64, 128, 1, TmaSwizzle::k64B, "64B"},
                          {64, 256, 1, TmaSwizzle::k64B, "64B"},    {128, 128, 2, TmaSwizzle::k128B, "128B"},
                          {128, 128, 1, TmaSwizzle::k128B, "128B"}, {128, 64, 2, TmaSwizzle::k128B, "128B"},
                          {256, 64, 1, TmaSwizzle::kNone, "none"},  {32, 128, 2, TmaSwizzle::kNone, "none"},
                          {64, 128, 4, TmaSwizzle::k64B, "64B"},    {128, 128, 4, TmaSwizzle::k128B, "128B"},
                          {64, 128, 8, TmaSwizzle::k64B, "64B"},    {128, 128, 3, TmaSwizzle::k128B, "128B"}};
      for (const Cfg& c : cfgs) {
        CUtensorMap map;
        tma_map_2d_u8(&map, src.data(), pitch, nrows, pitch, uint32_t(c.cols), uint32_t(c.rows), c.sw);
        const int box_bytes = c.cols * c.rows, step_bytes = box_bytes * c.boxes;
        const int tiles_x = int(pitch / c.cols), tiles = tiles_x * int(nrows / c.rows);
        for (int inflight_kb : {32, 64, 128, 192}) {
          const int stages = inflight_kb * 1024 / step_bytes;
          if (stages < 1) continue;
          const size_t smem = size_t(stages) * step_bytes + stages * 8 + 1024;
          if (smem > 220 * 1024) continue;
          ATOM_CUDA_CHECK(cudaFuncSetAttribute(tma_stream_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
          const int grid = props.sm_count * ctas_per_sm;
          const int steps = int((size_t(256) << 20) / (size_t(grid) * step_bytes)) + stages;  // ~256 MB per launch
          const double ms = atom::bench::time_ms(st, [&](int) {
            tma_stream_kernel<<<grid, 32, smem, st>>>(map, stages, c.boxes, box_bytes, c.cols, c.rows, tiles_x, tiles,
                                                      steps, sink.data());
            ATOM_CUDA_CHECK_LAUNCH();
          }, 7);
          const double bytes = double(grid) * steps * step_bytes;
          const double gbs = bytes / ms * 1e-6;
          const double per_clk = bytes / props.sm_count / (ms * 1e-3 * clock_khz * 1e3);
          rows.push_back({mb, c.cols, c.rows, c.boxes, stages, ctas_per_sm, c.name, gbs, per_clk});
          std::printf("%7d %5d %5d %6d %7d %7dK %6s | %9.0f %12.1f\n", mb, c.cols, c.rows, c.boxes, stages,
                      stages * step_bytes / 1024, c.name, gbs, per_clk);
          std::fflush(stdout);
        }
      }
    }
    if (!json.empty()) {
      nlohmann::json j = {{"device", props.name}, {"results", nlohmann::json::array()}};
      for (const Row& r : rows)
        j["results"].push_back({{"src_mb", r.src_mb}, {"box_cols", r.box_cols}, {"box_rows", r.box_rows},
                                {"boxes", r.boxes}, {"stages", r.stages}, {"ctas_per_sm", r.ctas_per_sm},
                                {"swizzle", r.swizzle}, {"gbs", r.gbs}, {"bytes_per_clk_sm", r.bytes_per_clk_sm}});
      if (!atom::bench::write_json(json, j)) return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tma: %s\n", e.what());
    return 1;
  }
  return 0;
}
