// The GPU serving path (issue 6 items 2, 6): fp32 q/k/v into RoPE + the KV write, greedy sampling on the
// GPU, CUDA graphs for decode steps, and CudaExecutor over the engine's SeqStep batches. Fresh seeds.
//   * rope_kv_append_f32 writes the bytes the CPU reference computes (rope_apply + kv_quantize_rows on
//     fp32) through the cache layout, for INT4 / INT8 / fp16 KV;
//   * w8a8 / atom with fp32 activations (f32_acts) land clearly closer to the CPU than the fp16 path, and
//     within half of quantization's own logit change;
//   * greedy generations: batched (graphs) == one request at a time (graphs) == eager batched, ids
//     from step_greedy == argmax of step's logits, and graphs are actually replayed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "atom/backend/cuda/cuda_executor.h"
#include "atom/backend/cuda/rope_kv_f32.h"
#include "atom/core/error.h"
#include "atom/core/half.h"
#include "atom/model/rope.h"
#include "atom/quant/kv_quant.h"
#include "gpu_model_test_util.h"

using namespace gpu_test;

namespace {

// ---------------------------------------------------------------- RoPE + KV append from fp32

void check_rope_kv(KvDtype dt, int hd) {
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  const int nh = 4, nkv = 2, T = 37, units = nh + 2 * nkv;
  ModelConfig c = tiny_config();
  c.head_dim = hd;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> qkv(size_t(T) * units * hd);
  for (size_t i = 0; i < qkv.size(); ++i) qkv[i] = nd(rng) * ((i / hd) % 3 == 1 ? 30.0f : 1.0f);
  std::vector<int32_t> pos(T), slots(T);
  PagedKvSpec spec{1, nkv, hd, 16, dt, 8};
  std::vector<int32_t> perm_slots(static_cast<size_t>(spec.n_pages * 16));
  std::iota(perm_slots.begin(), perm_slots.end(), 0);
  std::shuffle(perm_slots.begin(), perm_slots.end(), rng);
  for (int t = 0; t < T; ++t) {
    pos[size_t(t)] = int32_t(rng() % 4000);
    slots[size_t(t)] = t == 5 ? -1 : perm_slots[size_t(t)];  // -1: no write
  }
  PagedKvCache kv(spec);
  Stream s;
  std::vector<uint8_t> poison(size_t(kv.bytes()), 0xA5);
  ATOM_CUDA_CHECK(cudaMemcpy(kv.data(), poison.data(), poison.size(), cudaMemcpyHostToDevice));
  DeviceBuffer<float> d_qkv, d_freq;
  DeviceBuffer<int32_t> d_pos, d_slots;
  DeviceBuffer<uint16_t> d_q;
  d_qkv.upload(qkv, s);
  d_freq.upload(inv_freq, s);
  d_pos.upload(pos, s);
  d_slots.upload(slots, s);
  d_q.resize(size_t(T) * nh * hd);
  rope_kv_append_f32(d_qkv.data(), d_pos.data(), d_freq.data(), T, nh, nkv, hd, d_q.data(), kv, 0, d_slots.data(), s);
  const std::vector<uint16_t> q16 = d_q.download(s);
  std::vector<uint8_t> pool(size_t(kv.bytes()));
  ATOM_CUDA_CHECK(cudaMemcpy(pool.data(), kv.data(), pool.size(), cudaMemcpyDeviceToHost));

  const PagedKvLayout L = kv.layout();
  const int bits = kv_bits(dt);
  int64_t values = 0, off_by_one = 0;
  for (int t = 0; t < T; ++t) {
    std::vector<float> row(qkv.begin() + int64_t(t) * units * hd, qkv.begin() + int64_t(t + 1) * units * hd);
    rope_apply(row.data(), nh + nkv, hd, inv_freq.data(), pos[size_t(t)]);  // q heads then K heads
    for (int i = 0; i < nh * hd; ++i)
      ASSERT_NEAR(fp16_to_float(q16[size_t(t) * nh * hd + i]), row[size_t(i)], 1e-3 * std::fabs(row[size_t(i)]) + 1e-4)
          << "q t=" << t << " i=" << i;
    if (slots[size_t(t)] < 0) continue;
    const int64_t page = slots[size_t(t)] / 16, off = slots[size_t(t)] % 16;
    for (int which = 0; which < 2; ++which) {
      const float* x = row.data() + (nh + which * nkv) * hd;
      std::vector<uint8_t> packed(size_t(nkv) * hd);
      std::vector<float> scales(static_cast<size_t>(nkv));
      std::vector<uint8_t> zeros(static_cast<size_t>(nkv));
      if (bits < 16) quant::kv_quantize_rows(x, 1, nkv * hd, nkv, hd, bits, packed.data(), scales.data(), zeros.data());
      for (int h = 0; h < nkv; ++h) {
        const uint8_t* blk = pool.data() + L.block_offset(0, page, h);
        const uint8_t* vals = blk + (which ? L.v_values() : L.k_values()) + off * L.row_bytes();
        if (bits == 16) {  // fp16 of the rotated fp32 value, within 1 ulp (sincosf vs std::sin/cos), rarely
          for (int i = 0; i < hd; ++i) {
            uint16_t got;
            std::memcpy(&got, vals + 2 * i, 2);
            const uint16_t want = float_to_fp16(x[h * hd + i]);
            ++values;
            if (got != want) {  // compare values, not bit patterns: +0 and -0 are one rounding apart too
              const float g = fp16_to_float(got), w = fp16_to_float(want);
              ASSERT_LE(std::fabs(g - w), std::max(std::ldexp(std::fabs(w), -10), 0x1p-24f))
                  << "t=" << t << " h=" << h << " i=" << i;
              ++off_by_one;
            }
          }
          continue;
        }
        uint16_t sc;
        std::memcpy(&sc, blk + (which ? L.v_scales() : L.k_scales()) + 2 * off, 2);
        const uint8_t zero = blk[(which ? L.v_zeros() : L.k_zeros()) + off];
        if (which == 1) {  // V is not rotated: scale and zero are bit-exact
          EXPECT_EQ(fp16_to_float(sc), scales[size_t(h)]) << "scale t=" << t << " h=" << h;
          EXPECT_EQ(zero, zeros[size_t(h)]) << "zero t=" << t << " h=" << h;
        } else {  // a rotated K's min/max may move by an ulp: the fp16 scale by <= 1 ulp, the zero by <= 1
          EXPECT_NEAR(fp16_to_float(sc), scales[size_t(h)], std::ldexp(std::fabs(scales[size_t(h)]), -10))
              << "scale t=" << t << " h=" << h;
          EXPECT_LE(std::abs(int(zero) - int(zeros[size_t(h)])), 1) << "zero t=" << t << " h=" << h;
        }
        for (int i = 0; i < hd; ++i) {
          const int got = bits == 8 ? vals[i] : (vals[i / 2] >> (4 * (i % 2))) & 15;
          const uint8_t* ref_row = packed.data() + size_t(h) * hd * bits / 8;
          const int want = bits == 8 ? ref_row[i] : (ref_row[i / 2] >> (4 * (i % 2))) & 15;
          ++values;
          // sincosf vs std::sin/cos may move a rotated K by an ulp and flip a rounding: allow +-1, rarely
          if (got != want) {
            ASSERT_LE(std::abs(got - want), 1) << "t=" << t << " h=" << h << " i=" << i << " which=" << which;
            ++off_by_one;
          }
        }
      }
    }
  }
  // the skipped token left its page slot untouched (still poison)
  const int64_t p5 = perm_slots[5] / 16, o5 = perm_slots[5] % 16;
  EXPECT_EQ(pool[size_t(L.block_offset(0, p5, 0) + L.k_values() + o5 * L.row_bytes())], 0xA5);
  std::printf("kv bits %d hd %d: %lld of %lld values off by one\n", bits, hd, (long long)off_by_one,
              (long long)values);
  EXPECT_LE(off_by_one, values / 200 + 1);
}

TEST(GpuRopeKvF32, MatchesCpuQuantizationInt4) {
  REQUIRE_GPU();
  check_rope_kv(KvDtype::I4, 64);
  check_rope_kv(KvDtype::I4, 128);
}
TEST(GpuRopeKvF32, MatchesCpuQuantizationInt8AndF16) {
  REQUIRE_GPU();
  check_rope_kv(KvDtype::I8, 128);
  check_rope_kv(KvDtype::F16, 64);
}

// ---------------------------------------------------------------- quantized modes: fp32 vs fp16 activations

class GpuF32Acts : public ::testing::TestWithParam<GpuMode> {};

// The CPU quantizes fp32 values; the older GPU path rounded q/k/v, gate/up and the fused ops' results to
// fp16 first, which flips INT4/INT8 steps now and then. f32_acts removes those roundings, but on this tiny
// random model any remaining difference (fp16 attention arithmetic) re-seeds flips in the next layer, so the
// two paths land about equally close (H200, 2026-12-01: w8a8 0.031 vs 0.030, atom 0.154 vs 0.148 relative
// logit error at 40 tokens; on SmolLM2 the fp32 path moved w8a8 ppl from +0.31% to +0.18% of the CPU).
// Bounds: the GPU-vs-CPU gap is below quantization's own change, not worse than the fp16 path by more
// than noise, and the mean NLL is within 0.5%.
TEST_P(GpuF32Acts, NearTheCpuAndNotWorseThanTheFp16Path) {
  REQUIRE_GPU();
  const GpuMode mode = GetParam();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto cpu = cpu_model(mode, seed);
  const int64_t n = 120, V = cpu->cfg.vocab_size;
  const auto toks = random_tokens(n, rng);
  const std::vector<float> ref = cpu_all_logits(*cpu, toks);
  const std::vector<float> dref = cpu_all_logits(*make_random_llama(tiny_config(), seed), toks);
  const double qerr = rel_err(ref, dref);
  std::vector<int32_t> bt = {0, 1, 2, 3, 4, 5, 6, 7};
  double rel[2], nll[2];
  for (int f32 = 0; f32 < 2; ++f32) {
    GpuModelOptions o = small_options();
    o.f32_acts = f32 == 1;
    o.max_logit_rows = n;  // every token's logits in one step
    auto gpu = GpuLlamaModel::from_cpu(*cpu, o);
    std::vector<float> got(size_t(n * V), NAN);
    gpu->step_all_logits(SeqStep{0, toks.data(), n, 0, bt.data(), 8, true}, got.data());
    rel[f32] = rel_err(got, ref);
    nll[f32] = mean_nll(got, toks, V);
  }
  const double nll_c = mean_nll(ref, toks, V);
  std::printf("%s vs CPU: fp16 acts rel %.4g (NLL %+.4f%%), fp32 acts rel %.4g (NLL %+.4f%%); quantization's own "
              "%.4g\n", gpu_mode_name(mode), rel[0], 100 * (nll[0] / nll_c - 1), rel[1], 100 * (nll[1] / nll_c - 1),
              qerr);
  EXPECT_LT(rel[1], qerr);
  EXPECT_LT(rel[1], 1.1 * rel[0]);
  EXPECT_LT(std::fabs(nll[1] / nll_c - 1.0), 0.005);
}

INSTANTIATE_TEST_SUITE_P(Modes, GpuF32Acts, ::testing::Values(GpuMode::W8A8, GpuMode::Atom),
                         [](const auto& i) { return std::string(gpu_mode_name(i.param)); });

// ---------------------------------------------------------------- CudaExecutor greedy decoding

using Gen = std::vector<std::vector<int32_t>>;

// Greedy decoding of `prompts` through the executor: `together` runs them as one ragged batch (one
// prefill step, then decode steps), else one request at a time. Request r owns pages [r*8, r*8+8).
// With `via_logits` tokens come from step()'s logits (host argmax) instead of step_greedy.
Gen run_greedy(CudaExecutor& ex, const Gen& prompts, int new_tokens, bool together, bool via_logits = false) {
  const int64_t R = int64_t(prompts.size()), V = ex.config().vocab_size;
  Gen out(static_cast<size_t>(R));
  std::vector<std::vector<int32_t>> bts(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r)
    for (int j = 0; j < 8; ++j) bts[size_t(r)].push_back(int32_t(r * 8 + j));
  auto run = [&](const std::vector<int64_t>& who) {
    Gen seq(static_cast<size_t>(R));
    std::vector<int64_t> done(size_t(R), 0);
    for (int64_t r : who) seq[size_t(r)] = prompts[size_t(r)];
    std::vector<int32_t> ids(who.size());
    std::vector<float> logits(who.size() * size_t(V));
    for (int step = 0; step < new_tokens; ++step) {
      std::vector<engine::SeqStep> batch;
      for (int64_t r : who) {
        const auto& s = seq[size_t(r)];
        const int64_t need = (int64_t(s.size()) + 15) / 16;  // blocks covering every position so far
        batch.push_back({r, s.data() + done[size_t(r)], int64_t(s.size()) - done[size_t(r)], done[size_t(r)],
                         bts[size_t(r)].data(), need, true});
      }
      if (via_logits) {
        ex.step(batch, logits.data());
        for (size_t i = 0; i < who.size(); ++i)
          ids[i] = int32_t(std::max_element(&logits[i * size_t(V)], &logits[(i + 1) * size_t(V)]) - &logits[i * size_t(V)]);
      } else {
        ex.step_greedy(batch, ids.data());
      }
      for (size_t i = 0; i < who.size(); ++i) {
        const int64_t r = who[i];
        done[size_t(r)] = int64_t(seq[size_t(r)].size());
        seq[size_t(r)].push_back(ids[i]);
        out[size_t(r)].push_back(ids[i]);
      }
    }
  };
  if (together) {
    std::vector<int64_t> all(static_cast<size_t>(R));
    std::iota(all.begin(), all.end(), 0);
    run(all);
  } else {
    for (int64_t r = 0; r < R; ++r) run({r});
  }
  return out;
}

class CudaExecutorModes : public ::testing::TestWithParam<GpuMode> {};

TEST_P(CudaExecutorModes, GreedyBatchEqualsSingleEqualsEager) {
  REQUIRE_GPU();
  const GpuMode mode = GetParam();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 rng(seed);
  auto cpu = cpu_model(mode, seed);
  CudaExecutorOptions o;
  o.num_pages = 48;
  o.max_num_seqs = 8;
  o.max_num_batched_tokens = 128;
  auto graphs = make_cuda_executor(*cpu, o);
  o.cuda_graphs = false;
  auto eager = make_cuda_executor(*cpu, o);
  EXPECT_EQ(graphs->name(), std::string("cuda-") + gpu_mode_name(mode));
  EXPECT_EQ(graphs->num_pages(), 48);
  // 5 requests (padded to a bucket of 8), prompts of 1..40 tokens: the block-table width crosses 1, 2, 4
  Gen prompts;
  for (int64_t len : {3, 40, 1, 17, 26}) prompts.push_back(random_tokens(len, rng));
  const int steps = 30;
  const Gen batched = run_greedy(*graphs, prompts, steps, true);
  const Gen single = run_greedy(*graphs, prompts, steps, false);
  const Gen batched_eager = run_greedy(*eager, prompts, steps, true);
  const Gen via_logits = run_greedy(*graphs, prompts, steps, true, true);
  for (size_t r = 0; r < prompts.size(); ++r) {
    EXPECT_EQ(batched[r], single[r]) << "request " << r << ": batched vs alone";
    EXPECT_EQ(batched[r], batched_eager[r]) << "request " << r << ": graphs vs eager";
    EXPECT_EQ(batched[r], via_logits[r]) << "request " << r << ": step_greedy vs argmax of step's logits";
  }
  std::printf("%s: %lld graph replays, %lld graphs\n", gpu_mode_name(mode),
              (long long)graphs->model().graph_replays(), (long long)graphs->model().graphs_captured());
  EXPECT_GT(graphs->model().graph_replays(), 3 * steps);
  EXPECT_EQ(eager->model().graph_replays(), 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaExecutorModes, ::testing::Values(GpuMode::Fp16, GpuMode::W8A8, GpuMode::Atom),
                         [](const auto& i) { return std::string(gpu_mode_name(i.param)); });

TEST(CudaExecutor, RejectsTheReservedPageAndBadOptions) {
  REQUIRE_GPU();
  auto cpu = cpu_model(GpuMode::Fp16, 5);
  CudaExecutorOptions o;
  o.num_pages = 8;
  o.max_num_seqs = 4;
  o.max_num_batched_tokens = 64;
  auto ex = make_cuda_executor(*cpu, o);
  std::vector<int32_t> t = {1}, bt = {8}, ids(1);
  EXPECT_THROW(ex->step_greedy({{0, t.data(), 1, 0, bt.data(), 1, true}}, ids.data()), atom::Error);  // page 8 of 8
  bt[0] = 7;
  ex->step_greedy({{0, t.data(), 1, 0, bt.data(), 1, true}}, ids.data());
  EXPECT_GE(ids[0], 0);
  o.page_size = 8;
  EXPECT_THROW(make_cuda_executor(*cpu, o), atom::Error);
  o.page_size = 16;
  o.gpu_memory_utilization = 1.5f;
  o.num_pages = 0;
  EXPECT_THROW(make_cuda_executor(*cpu, o), atom::Error);
}

}  // namespace
