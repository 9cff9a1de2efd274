#!/usr/bin/env bash
# GPU check, run ON THE DEVICE MACHINE (one H100) through the `run` tool:
#   run(command="bash scripts/gpu-check.sh", carry=[".debs"])
# It configures + builds (Release, CUDA ON, -j16), runs the CPU and GPU CTest suites, compute-sanitizer
# memcheck on the GPU tests (small sizes), the GEMM / activation benchmark, copies logs and JSON to
# $OUT and prints a short table last.
#
# The device machine has cmake/ninja/nvcc/g++ but not our Debian libraries (fmt, spdlog, gtest, ...).
# They travel as Debian bookworm .debs in .debs/ (git-ignored), which scripts/device-carry.sh fetches on the
# dev box (with the model pieces of .devcarry/), and are unpacked with dpkg -x into a private prefix (never into /).
#
# Environment knobs: GPU_CHECK_STAGES (default "env deps build cpu gpu sanitize bench"),
#   BENCH_ARGS (extra arguments for bench_gemm), BUILD (build dir, default build-gpu),
#   BUILD_TARGETS (only these targets, e.g. "atom_gpu_tests bench_attention"), GPU_TEST_FILTER (gtest filter
#   for the gpu stage; the parameterized suites are named Modes/GpuModelModes.* etc., which "GpuModel.*" does
#   not match: "*" runs everything once), GPU_TEST_ARGS (more gtest flags, e.g. --gtest_repeat=20; ATOM_TEST_SEED=N
#   replays a printed seed), SANITIZE_FILTER (gtest filter for compute-sanitizer), BENCH (which benchmarks:
#   default "gemm attention"; "fused" adds bench_fused, "tma" bench_tma (TMA_BENCH_ARGS), "gptq" bench_gptq_gpu (GPTQ_BENCH_ARGS), "quantize" bench_quantize_gpu (QUANTIZE_BENCH_RUNS)
#   (QUANTIZE_BENCH_ARGS, default "--layers 4": 4 of llama2-7b's 32 layers at 128 x 2048 tokens, the whole model
#   extrapolated per layer; QUANTIZE_BENCH_ARGS="" runs all 32, QUANTIZE_TIMEOUT default 540 s), "sdpa" PyTorch's SDPA as the attention reference), ATTN_BENCH_ARGS (extra arguments for bench_attention; ATTN_BENCH_ARGS2, ATTN_BENCH_ARGS3: more runs with these),
#   FUSED_BENCH_ARGS (extra arguments for bench_fused), SERVE_RUNS (bench_serve_gpu runs of the "serve"
#   stage, ';'-separated argument lists; default: the issue-6 set below), REAL_MODEL (GGUF for the "real"
#   stage; default models/SmolLM2-135M-Instruct.Q4_1.gguf, else assembled from .devcarry/m*/part-*),
#   REAL_DATA (folder with wikitext2-test.txt and wikitext2-valid-tokenized.txt; default ../shared/data, else
#   .devcarry/data).
#
# Stages beyond the default: "serve" (bench_serve_gpu: synthetic llama shapes, fp16/w8a8/atom side by side),
#   "real" (SmolLM2: quantize on the device's CPU, ppl CPU vs GPU in each mode, atom serve --device cuda
#   answered over HTTP, atom bench serve --device cuda over the three models; the model goes over in two calls:
#   first `carry=[".debs", ".devcarry/m1"]` with stage "stash", then `carry=[".devcarry/m2", ".devcarry/data"]`
#   with "real" within 30 s, while the machine is warm), "load" (a 256-client load test of atom serve --device
#   cuda, fp16 and atom, on .devcarry/tiny/tiny-smollm-tokenizer.gguf from tools/loadtest/make_tiny_gguf.py),
#   "accuracy" (issue 3 ladder at 128 x 2048 calibration, quantized and measured on the GPU; the model arrives as for
#   "real"), "profile" (ncu on one kernel launch: PROFILE_KERNEL regex, PROFILE_BIN (default bench_gemm; bench_attention,
#   bench_fused), PROFILE_ARGS or PROFILE_RUNS, PROFILE_SKIP launches of it skipped first), "tp" (multi-GPU kinds only: GpuTensorParallel tests, llama2-70b atom at TP = 1/2/4/8 and fp16 at TP = 2).
# Pieces: scripts/device-carry.sh (m1 = the first 38,500,000 bytes, m2 = the rest).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
STAGES=${GPU_CHECK_STAGES:-"env deps build gpu bench cpu sanitize serve real"}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
LOG=$OUT/gpu-check.log
has() { [[ " $STAGES " == *" $1 "* ]]; }
say() { echo "== $*" | tee -a "$LOG"; }
: >"$LOG"
export PATH=/usr/local/cuda/bin:$PATH
export CUDACXX=${CUDACXX:-/usr/local/cuda/bin/nvcc}
SUMMARY=()

if has env; then
  say "environment"
  {
    date -u +%Y-%m-%dT%H:%M:%SZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv
    nvcc --version | tail -2
    g++ --version | head -1; cmake --version | head -1; ninja --version
    grep PRETTY /etc/os-release; ldd --version | head -1
    ls -d /usr/include/fmt /usr/include/gtest /usr/include/spdlog 2>&1
    command -v pkg-config compute-sanitizer gnuplot 2>&1
  } 2>&1 | tee -a "$LOG"
fi

# ---- dependencies: the carried .debs into a private prefix ----
P=/tmp/atom-deps
ARCH_LIB=$P/usr/lib/x86_64-linux-gnu
CMAKE_DEP_ARGS=()
if has deps && [ -d .debs ]; then
  say "unpacking carried .debs into $P"
  mkdir -p "$P"
  for f in .debs/*.deb; do dpkg -x "$f" "$P"; done
  export LD_LIBRARY_PATH=$ARCH_LIB:$ARCH_LIB/openblas-openmp:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
  export PKG_CONFIG_LIBDIR=$ARCH_LIB/pkgconfig:$P/usr/share/pkgconfig
  export PKG_CONFIG_SYSROOT_DIR=$P
  CMAKE_DEP_ARGS=(-DCMAKE_PREFIX_PATH=$P/usr -DPKG_CONFIG_EXECUTABLE=$P/usr/bin/pkgconf
    -DOPENBLAS_LIB=$ARCH_LIB/openblas-openmp/libopenblas.so
    -DOPENBLAS_INCLUDE=$P/usr/include/x86_64-linux-gnu/openblas-openmp
    -DLAPACKE_LIB=$ARCH_LIB/liblapacke.so
    "-DCMAKE_EXE_LINKER_FLAGS=-Wl,-rpath-link,$ARCH_LIB/openblas-openmp -Wl,-rpath-link,$ARCH_LIB")
fi

if has build; then
  say "configure + build ($BUILD, Release, CUDA ON, -j$JOBS)"
  t0=$(date +%s)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATOM_CUDA=ON "${CMAKE_DEP_ARGS[@]}" \
    >"$OUT/configure.log" 2>&1 || { tail -40 "$OUT/configure.log"; echo "CONFIGURE FAILED"; exit 1; }
  cmake --build "$BUILD" -j"$JOBS" ${BUILD_TARGETS:+--target $BUILD_TARGETS} >"$OUT/build.log" 2>&1 || { grep -E 'error|Error' -A3 "$OUT/build.log" | head -60; echo "BUILD FAILED"; exit 1; }
  SUMMARY+=("build: ok in $(( $(date +%s) - t0 )) s")
fi

if has gpu; then
  say "GPU tests (atom_gpu_tests directly, then ctest -L gpu)"
  # (to the log first: a `| head` on a live pipe killed the tests by SIGPIPE after 80 failure lines)
  timeout ${GPU_TEST_TIMEOUT:-400} "$BUILD/tests/gpu/atom_gpu_tests" ${GPU_TEST_FILTER:+--gtest_filter=$GPU_TEST_FILTER} ${GPU_TEST_ARGS:-} >"$OUT/gpu-tests.log" 2>&1
  echo "atom_gpu_tests: rc=$?"
  grep -E '^\[  (FAILED|PASSED|  OK|SKIPPED)|Failure|expected|error' "$OUT/gpu-tests.log" | head -80
  if [ -z "${GPU_TEST_FILTER:-}" ]; then
    ctest --test-dir "$BUILD" -L gpu -j4 --timeout 600 --output-on-failure >"$OUT/ctest-gpu.log" 2>&1
    rc=$?; SUMMARY+=("ctest -L gpu: rc=$rc, $(grep -E 'tests passed' "$OUT/ctest-gpu.log")")
  else
    SUMMARY+=("gpu tests ($GPU_TEST_FILTER ${GPU_TEST_ARGS:-}): $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/gpu-tests.log" | sort | uniq -c | tr '\n' ' ')")
  fi
fi

if has bench; then
  say "benchmark"
  BENCH=${BENCH:-gemm attention}
  if [[ " $BENCH " == *" gemm "* ]]; then
    "$BUILD/bench/bench_gemm" --json "$OUT/bench_gemm.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -120
    if command -v gnuplot >/dev/null && [ -f bench/plot_gemm.sh ]; then bash bench/plot_gemm.sh "$OUT/bench_gemm.json" "$OUT/bench_gemm.png"; fi
  fi
  if [[ " $BENCH " == *" tma "* ]]; then  # TMA fill rate by box shape (the GEMM data path's copies alone)
    "$BUILD/bench/bench_tma" --json "$OUT/bench_tma.json" ${TMA_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-tma.log" | tail -60
  fi
  if [[ " $BENCH " == *" gptq "* ]]; then  # GPTQ on the GPU, one block's linears, extrapolated to the model
    timeout ${GPTQ_TIMEOUT:-300} "$BUILD/bench/bench_gptq_gpu" --json "$OUT/bench_gptq.json" ${GPTQ_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-gptq.log" | tail -12
    SUMMARY+=("bench_gptq_gpu: rc=${PIPESTATUS[0]}, $(grep -E 'whole model' "$OUT/bench-gptq.log")")
  fi
  if [[ " $BENCH " == *" quantize "* ]]; then  # atom quantize --device cuda end to end, synthetic llama2-7b
    # QUANTIZE_BENCH_RUNS: ';'-separated argument lists, one run each (default: 4 layers, fp32 then TF32 forward)
    IFS=';' read -ra QRUNS <<<"${QUANTIZE_BENCH_RUNS:-${QUANTIZE_BENCH_ARGS---layers 4};--layers 4 --tf32}"
    qi=0
    for qargs in "${QRUNS[@]}"; do
      qi=$((qi + 1))
      # shellcheck disable=SC2086
      timeout ${QUANTIZE_TIMEOUT:-540} "$BUILD/bench/bench_quantize_gpu" --json "$OUT/bench_quantize-$qi.json" $qargs 2>&1 | tee "$OUT/bench-quantize-$qi.log" | grep -v '^  layer '
      SUMMARY+=("bench_quantize_gpu $qargs: rc=${PIPESTATUS[0]}, $(grep -E '^whole model' "$OUT/bench-quantize-$qi.log")")
    done
  fi
  if [[ " $BENCH " == *" fused "* ]]; then
    "$BUILD/bench/bench_fused" --json "$OUT/bench_fused.json" ${FUSED_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-fused.log" | tail -80
    if command -v gnuplot >/dev/null && [ -s "$OUT/bench_fused.json" ]; then bash bench/plot_fused.sh "$OUT/bench_fused.json" "$OUT/bench_fused.png" || echo "plot_fused failed"; fi
  fi
  if [[ " $BENCH " == *" sdpa "* ]]; then  # the outside reference for the decode table (the device's PyTorch)
    PYTHONUNBUFFERED=1 timeout ${SDPA_TIMEOUT:-200} python3 bench/sdpa_reference.py --json "$OUT/sdpa_reference.json" 2>&1 | tee "$OUT/sdpa.log" | tail -40
    SUMMARY+=("sdpa reference: rc=${PIPESTATUS[0]}")
  fi
  if [[ " $BENCH " == *" attention "* ]]; then
    timeout ${ATTN_TIMEOUT:-300} "$BUILD/bench/bench_attention" --json "$OUT/bench_attention.json" ${ATTN_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-attention.log" | tail -80
    if command -v gnuplot >/dev/null && [ -f bench/plot_attention.sh ]; then bash bench/plot_attention.sh "$OUT/bench_attention.json" "$OUT/bench_attention.png"; fi
    for n in 2 3; do  # more runs in the same call (A/B of a variant's flag): ATTN_BENCH_ARGS2, ATTN_BENCH_ARGS3
      var=ATTN_BENCH_ARGS$n
      [ -n "${!var:-}" ] || continue
      # shellcheck disable=SC2086
      timeout ${ATTN_TIMEOUT:-300} "$BUILD/bench/bench_attention" --json "$OUT/bench_attention-$n.json" ${!var} 2>&1 | tee "$OUT/bench-attention-$n.log" | tail -40
    done
    # prefill TFLOPS of both runs side by side (when either has a prefill table)
    if command -v gnuplot >/dev/null && grep -qs '"kind": "prefill"' "$OUT"/bench_attention*.json; then
      bash bench/plot_prefill.sh "$OUT/bench_prefill.png" "$OUT"/bench_attention*.json || echo "plot_prefill failed"
    fi
  fi
fi

# "profile": Nsight Compute on one kernel launch of a benchmark (hardware counters; clocks left alone).
#   PROFILE_KERNEL (name regex, default the warp-specialized GEMM), PROFILE_BIN (default bench_gemm),
#   PROFILE_ARGS (its arguments), PROFILE_SKIP (launches of the kernel to skip first, default 0).
#   PROFILE_RUNS: several profiles in one call, ';'-separated argument lists for PROFILE_BIN (each replaces
#   PROFILE_ARGS; reports profile-1, profile-2, ...).
if has profile; then
  IFS=';' read -ra PRUNS <<<"${PROFILE_RUNS:-${PROFILE_ARGS:---shapes 1 --ms 16384}}"
  pi=0
  for pargs in "${PRUNS[@]}"; do
    pi=$((pi + 1))
    say "ncu profile $pi (${PROFILE_KERNEL:-ws_kernel}): $pargs"
    # shellcheck disable=SC2086
    timeout ${PROFILE_TIMEOUT:-240} ncu --clock-control none --kernel-name "regex:${PROFILE_KERNEL:-ws_kernel}" --launch-count 1 \
      --launch-skip ${PROFILE_SKIP:-0} --set full --import-source no -o "$OUT/profile-$pi" "$BUILD/bench/${PROFILE_BIN:-bench_gemm}" \
      $pargs >"$OUT/ncu-run-$pi.log" 2>&1
    SUMMARY+=("ncu $pi ($pargs): rc=$?")
    ncu --import "$OUT/profile-$pi.ncu-rep" --page details >"$OUT/ncu-$pi.log" 2>&1
    # stall reasons (sampled warp states) and pipe / shared-memory counters, appended to the details
    ncu --import "$OUT/profile-$pi.ncu-rep" --page raw 2>&1 | grep -E "pcsamp_warps_issue_stalled|pipe_.*_cycles_active|inst_executed_pipe|shared_op|data_pipe_lsu_wavefronts_mem_shared|l1tex__throughput|lts__t_sectors_srcunit_tex|sm__cycles_elapsed.avg " >>"$OUT/ncu-$pi.log"
    # per-SASS-instruction counters (executed instructions, stall samples) for reading on the dev box
    ncu --import "$OUT/profile-$pi.ncu-rep" --page source --print-source sass --csv 2>&1 | gzip >"$OUT/ncu-sass-$pi.csv.gz"
    grep -E "Duration|Throughput|Stall|Issue|Warp Cycles|Eligible|Active Warps|Registers|Bank|L1/TEX Hit|L2 Hit|Pipe|Executed Ipc" "$OUT/ncu-$pi.log" | head -40
  done
  # the SASS of the GEMM objects (the dev box has no cuobjdump)
  for o in $(find "$BUILD" -name 'atom_gemm*.cu.o'); do cuobjdump -sass "$o" 2>&1 | gzip >"$OUT/$(basename "$o").sass.gz"; done
fi

if has cpu; then
  say "CPU tests (ctest -L cpu)"
  ctest --test-dir "$BUILD" -L cpu -j"$JOBS" --timeout 600 --output-on-failure >"$OUT/ctest-cpu.log" 2>&1
  rc=$?; SUMMARY+=("ctest -L cpu: rc=$rc, $(grep -E 'tests passed' "$OUT/ctest-cpu.log")")
  grep -E 'Failed|\*\*\*' "$OUT/ctest-cpu.log" | head -20
fi

if has sanitize; then
  say "compute-sanitizer memcheck + racecheck (small sizes; GpuDevice.* left out: it provokes a CUDA API error on purpose)"
  if command -v compute-sanitizer >/dev/null; then
    for tool in memcheck racecheck; do
      ATOM_GPU_TEST_SMALL=1 timeout ${SANITIZE_TIMEOUT:-300} compute-sanitizer --tool $tool --error-exitcode 3 \
        "$BUILD/tests/gpu/atom_gpu_tests" --gtest_brief=1 --gtest_filter="${SANITIZE_FILTER:-GpuAtom.*:GpuAttention.*:GpuFused.*}" >"$OUT/sanitize-$tool.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && grep -E '=========' "$OUT/sanitize-$tool.log" | head -30; SUMMARY+=("compute-sanitizer $tool: rc=$rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize-$tool.log" | tail -1))")
    done
  else
    SUMMARY+=("compute-sanitizer: not found")
  fi
fi

if has serve; then
  say "serving benchmark (bench_serve_gpu)"
  DEFAULT_RUNS="--shape llama2-7b --modes fp16,w8a8,atom --workload fixed --input-len 128 --output-len 128 --num-prompts 1024 --max-num-seqs 256 --json $OUT/serve-7b-128.json"
  # the issue's "same latency" comparison at H100 memory: 0.51 of an H200's 141 GB = 0.9 of 80 GB, batch up to 1024
  DEFAULT_RUNS+=";--shape llama2-7b --modes fp16,w8a8,atom --workload fixed --input-len 128 --output-len 128 --num-prompts 2048 --max-num-seqs 1024 --gpu-memory-utilization 0.51 --json $OUT/serve-7b-128-h100mem.json"
  DEFAULT_RUNS+=";--shape llama2-7b --modes fp16,w8a8,atom --workload sharegpt --num-prompts 512 --max-num-seqs 256 --json $OUT/serve-7b-sharegpt.json"
  DEFAULT_RUNS+=";--shape llama3-8b --modes atom,w8a8 --workload fixed --input-len 1000 --output-len 1000 --num-prompts 512 --max-num-seqs 256 --max-num-batched-tokens 8192 --json $OUT/serve-8b-1000.json"
  DEFAULT_RUNS+=";--shape llama2-70b --modes atom --workload fixed --input-len 128 --output-len 128 --num-prompts 256 --max-num-seqs 128 --json $OUT/serve-70b-128.json"
  IFS=';' read -ra RUNS <<<"${SERVE_RUNS:-$DEFAULT_RUNS}"
  : >"$OUT/serve.log"
  for r in "${RUNS[@]}"; do
    echo "-- bench_serve_gpu $r" | tee -a "$OUT/serve.log"
    # shellcheck disable=SC2086
    timeout ${SERVE_TIMEOUT:-300} "$BUILD/bench/bench_serve_gpu" $r 2>&1 | tee -a "$OUT/serve.log" | grep -vE '^\{' | tail -8
    SUMMARY+=("bench_serve_gpu ${r%% --json*}: rc=${PIPESTATUS[0]}")
  done
  if command -v gnuplot >/dev/null && ls "$OUT"/serve-*.json >/dev/null 2>&1; then
    bash bench/plot_serve.sh "$OUT/serve.png" "$OUT"/serve-*.json || echo "plot_serve failed"
  fi
fi

# The real model (98 MB) does not fit one call's 64 MB: carry .devcarry/m1 (part-1) in one call with the
# "stash" stage, which copies it to /tmp (kept while the machine stays warm; carried folders are not), then
# .devcarry/m2 (part-2) in the next call with "real".
if has stash; then
  mkdir -p /tmp/atom-model-parts && cp .devcarry/m*/part-* /tmp/atom-model-parts/ 2>/dev/null
  SUMMARY+=("stash: $(ls /tmp/atom-model-parts 2>/dev/null | tr '\n' ' ')")
fi

# The real model and its data for the "real" and "accuracy" stages: sets RM (the GGUF, assembled from its pieces
# stashed in /tmp by an earlier call's "stash" stage and/or carried now) and RD (the folder of WikiText-2 files).
find_real_model() {
  RM=${REAL_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
  if [ ! -s "$RM" ]; then
    parts=()
    for i in 1 2 3 4; do
      p=$(ls /tmp/atom-model-parts/part-$i .devcarry/m*/part-$i 2>/dev/null | head -1)
      [ -n "$p" ] && parts+=("$p")
    done
    [ ${#parts[@]} -gt 0 ] && { mkdir -p "$(dirname "$RM")"; cat "${parts[@]}" >"$RM"; }
  fi
  RD=${REAL_DATA:-../shared/data}; [ -f "$RD/wikitext2-test.txt" ] || RD=.devcarry/data
}

if has real; then
  say "real model (SmolLM2-135M): quantize, ppl CPU vs GPU, serve --device cuda"
  find_real_model
  if [ ! -s "$RM" ] || [ ! -f "$RD/wikitext2-test.txt" ]; then
    SUMMARY+=("real: SKIPPED (model $RM or data $RD missing)")
  else
    sha256sum "$RM" | tee -a "$LOG"
    # logs under $OUT/real; checkpoints in /tmp (they would push the archive past the 16 MB a file may bring back)
    A="$BUILD/atom"; Q=$OUT/real; C=/tmp/atom-real; mkdir -p "$Q" "$C"
    CAL=(--calib "$RD/wikitext2-valid-tokenized.txt" --samples ${REAL_SAMPLES:-8} --seqlen ${REAL_SEQLEN:-512} --threads $JOBS)
    t0=$(date +%s)
    "$A" quantize --model "$RM" --out "$C/atom" --method atom "${CAL[@]}" >"$Q/quantize-atom.log" 2>&1
    SUMMARY+=("quantize atom: rc=$? in $(( $(date +%s) - t0 )) s")
    "$A" quantize --model "$RM" --out "$C/w8a8" --method w8a8 --kv-bits 8 "${CAL[@]}" >"$Q/quantize-w8a8.log" 2>&1
    SUMMARY+=("quantize w8a8: rc=$?")
    for m in fp16:"$RM" w8a8:"$C/w8a8" atom:"$C/atom"; do
      name=${m%%:*}; path=${m#*:}
      for dev in cpu cuda; do
        "$A" ppl --model "$path" --data "$RD/wikitext2-test.txt" --ctx 2048 --max-windows ${REAL_WINDOWS:-4} \
          --device $dev --threads $JOBS --json "$Q/ppl-$name-$dev.json" >"$Q/ppl-$name-$dev.log" 2>&1
        SUMMARY+=("ppl $name $dev: $(grep -oE '"ppl": *[0-9.]+' "$Q/ppl-$name-$dev.json" 2>/dev/null || echo "FAILED (see real/ppl-$name-$dev.log)")")
      done
      # the whole file on the GPU (148 windows): seconds there, an hour on the CPU
      "$A" ppl --model "$path" --data "$RD/wikitext2-test.txt" --ctx 2048 --device cuda --json "$Q/ppl-$name-cuda-full.json" \
        >"$Q/ppl-$name-cuda-full.log" 2>&1
      SUMMARY+=("ppl $name cuda, whole file: $(grep -oE '"ppl": *[0-9.]+' "$Q/ppl-$name-cuda-full.json" 2>/dev/null || echo FAILED)")
    done
    # atom serve on the GPU, driven over HTTP (streaming and not)
    "$A" serve --model "$C/atom" --device cuda --port 18123 --max-num-seqs 32 --max-num-batched-tokens 1024 >"$Q/serve.log" 2>&1 &
    SP=$!
    for i in $(seq 60); do curl -sf http://127.0.0.1:18123/health >/dev/null 2>&1 && break; sleep 1; done
    curl -s http://127.0.0.1:18123/v1/chat/completions -H 'Content-Type: application/json' \
      -d '{"messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":32,"temperature":0}' >"$Q/chat.json" 2>&1
    curl -sN http://127.0.0.1:18123/v1/completions -H 'Content-Type: application/json' \
      -d '{"prompt":"The history of the Roman Empire","max_tokens":24,"temperature":0.8,"top_p":0.9,"seed":7,"stream":true}' >"$Q/stream.txt" 2>&1
    curl -s http://127.0.0.1:18123/metrics >"$Q/metrics.txt" 2>&1
    kill -INT $SP; wait $SP
    SUMMARY+=("serve --device cuda: chat $(head -c 300 "$Q/chat.json" | tr '\n' ' ')")
    SUMMARY+=("serve --device cuda: stream events $(grep -c '^data:' "$Q/stream.txt")")
    "$A" bench serve --device cuda --models "$RM,$C/w8a8,$C/atom" --num-prompts ${REAL_PROMPTS:-512} --max-num-seqs 128 \
      --max-num-batched-tokens 4096 --max-model-len 2048 --dataset "$RD/wikitext2-test.txt" --json "$Q/bench-serve.json" \
      --plot "$Q/bench-serve.png" >"$Q/bench-serve.log" 2>&1
    SUMMARY+=("atom bench serve --device cuda: rc=$?"); tail -6 "$Q/bench-serve.log"
  fi
fi

# "accuracy" (issue 3 at the paper's settings): the ladder steps the GPU model runs, quantized on the GPU with
# 128 x 2048 calibration tokens and measured on the whole WikiText-2 test file on the GPU. The model arrives as
# for "real" (stash first). ACC_STEPS / ACC_SAMPLES / ACC_SEQLEN / ACC_WINDOWS override.
if has accuracy; then
  say "accuracy: SmolLM2 ladder, calibration ${ACC_SAMPLES:-128} x ${ACC_SEQLEN:-2048} on the GPU, ppl on the GPU"
  find_real_model
  if [ ! -s "$RM" ] || [ ! -f "$RD/wikitext2-test.txt" ]; then
    SUMMARY+=("accuracy: SKIPPED (model $RM or data $RD missing)")
  else
    ATOM_DATA="$RD/wikitext2-test.txt" ATOM_CALIB="$RD/wikitext2-valid-tokenized.txt" \
      timeout ${ACC_TIMEOUT:-540} bash scripts/ladder.sh --atom "$BUILD/atom" --model "$RM" --device cuda --threads $JOBS \
      --samples ${ACC_SAMPLES:-128} --seqlen ${ACC_SEQLEN:-2048} --windows ${ACC_WINDOWS:-0} --out "$OUT/ladder-gpu" \
      --steps "${ACC_STEPS:-fp16 w8a8 group128 clip gptq kv4}" 2>&1 | tee "$OUT/ladder-gpu.log" | tail -12
    SUMMARY+=("accuracy ladder: rc=${PIPESTATUS[0]} ($(grep -c '^[a-z0-9-]*: ppl' "$OUT/ladder-gpu.log") steps)")
  fi
fi

if has load; then
  say "load: atom serve --device cuda, ${LOAD_CLIENTS:-256} concurrent streaming clients, 10% hanging up"
  TM=${LOAD_MODEL:-.devcarry/tiny/tiny-smollm-tokenizer.gguf}
  if [ ! -s "$TM" ]; then
    SUMMARY+=("load: SKIPPED (no $TM; python3 tools/loadtest/make_tiny_gguf.py writes it)")
  else
    mkdir -p "$OUT/load"
    "$BUILD/atom" quantize --model "$TM" --out /tmp/tiny-atom --method atom --calib docs/results.md \
      --samples 4 --seqlen 256 --threads $JOBS >"$OUT/load/quantize.log" 2>&1 || tail -5 "$OUT/load/quantize.log"
    port=18200
    for m in fp16:"$TM" atom:/tmp/tiny-atom; do
      name=${m%%:*}; path=${m#*:}; port=$((port + 1))
      "$BUILD/atom" serve --model "$path" --device cuda --port $port --max-num-seqs 64 --max-num-batched-tokens 512 \
        --kv-pages ${LOAD_PAGES:-160} --max-queue 512 >"$OUT/load/serve-$name.log" 2>&1 &
      SP=$!
      for i in $(seq 60); do curl -sf http://127.0.0.1:$port/health >/dev/null 2>&1 && break; sleep 1; done
      timeout ${LOAD_TIMEOUT:-200} python3 tools/loadtest/openai_load.py --url http://127.0.0.1:$port --clients ${LOAD_CLIENTS:-256} \
        --disconnect 0.1 --json "$OUT/load/load-$name.json" >"$OUT/load/load-$name.log" 2>&1
      rc=$?
      kill -INT $SP 2>/dev/null; wait $SP; src=$?
      SUMMARY+=("load $name: rc=$rc server_exit=$src $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: d[k] for k in ('clients','disconnected','completed','mismatches','preemptions','largest_batch','kv_pages_used_after','ok')})" "$OUT/load/load-$name.json" 2>&1 | tail -1)")
    done
  fi
fi

if has tp; then  # a multi-GPU kind (nvidia-h200-x2/x4/x8): issue 7's tests and scaling runs
  NG=$(nvidia-smi -L 2>/dev/null | wc -l)
  say "tensor parallelism on $NG GPU(s)"
  export NCCL_NVLS_ENABLE=0  # never NVLink multicast on the lent machines (KINDS.md)
  timeout ${TP_TEST_TIMEOUT:-300} "$BUILD/tests/gpu/atom_gpu_tests" --gtest_filter='GpuTensorParallel.*' 2>&1 | tee "$OUT/tp-tests.log" | grep -E '^\[  (FAILED|PASSED|  OK|SKIPPED)|Failure'
  SUMMARY+=("tp tests: $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/tp-tests.log" | tr '\n' ' ')")
  for tp in 1 2 4 8; do
    [ "$tp" -le "$NG" ] || break
    timeout ${SERVE_TIMEOUT:-300} "$BUILD/bench/bench_serve_gpu" --shape llama2-70b --modes atom --tp $tp --workload fixed \
      --input-len 128 --output-len 128 --num-prompts ${TP_PROMPTS:-512} --max-num-seqs 256 --json "$OUT/serve-70b-tp$tp.json" \
      2>&1 | tee -a "$OUT/tp-serve.log" | grep -vE '^\{' | tail -3
    SUMMARY+=("70b atom tp=$tp: rc=${PIPESTATUS[0]}")
  done
  if [ "$NG" -ge 2 ]; then  # the FP16 baseline of 70B needs 2+ GPUs
    timeout ${SERVE_TIMEOUT:-300} "$BUILD/bench/bench_serve_gpu" --shape llama2-70b --modes fp16 --tp 2 --workload fixed \
      --input-len 128 --output-len 128 --num-prompts ${TP_PROMPTS:-512} --max-num-seqs 256 --json "$OUT/serve-70b-fp16-tp2.json" \
      2>&1 | tee -a "$OUT/tp-serve.log" | grep -vE '^\{' | tail -3
    SUMMARY+=("70b fp16 tp=2: rc=${PIPESTATUS[0]}")
  fi
fi

say "summary"
for s in "${SUMMARY[@]}"; do echo "  $s" | tee -a "$LOG"; done
# At most 8 files come back from $OUT: keep gpu-check.log, pack the rest into one archive.
if [ "${BUNDLE:-1}" = 1 ]; then
  ( cd "$OUT" && find . -mindepth 1 -maxdepth 1 ! -name gpu-check.log ! -name logs.tgz -print0 | tar czf logs.tgz --null -T - \
    && find . -mindepth 1 -maxdepth 1 ! -name gpu-check.log ! -name logs.tgz -exec rm -rf {} + )
fi
