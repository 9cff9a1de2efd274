#!/usr/bin/env bash
# GPU check, run ON THE DEVICE MACHINE (one H100) through the `run` tool:
#   run(command="bash scripts/gpu-check.sh", carry=[".debs"])
# It configures + builds (Release, CUDA ON, -j16), runs the CPU and GPU CTest suites, compute-sanitizer
# memcheck on the GPU tests (small sizes), the GEMM / activation benchmark, copies logs and JSON to
# $OUT and prints a short table last.
#
# The device machine has cmake/ninja/nvcc/g++ but not our Debian libraries (fmt, spdlog, gtest, ...).
# They travel as Debian bookworm .debs in .debs/ (git-ignored through .git/info/exclude), fetched on
# the dev box with:
#   mkdir -p .debs && cd .debs && apt-get download libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 \
#     nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 \
#     libpcre2-posix3 libsentencepiece-dev libsentencepiece0 libopenblas-openmp-dev libopenblas0-openmp \
#     libopenblas-dev liblapacke liblapacke-dev libtmglib3 libgfortran5 libquadmath0 libgtest-dev \
#     libgmock-dev googletest pkgconf pkgconf-bin libpkgconf3 libcpp-httplib-dev libcpp-httplib0.11 \
#     libssl-dev libssl3 libbrotli-dev libbrotli1 zlib1g-dev zlib1g libbenchmark-dev libbenchmark1debian
# and are unpacked with dpkg -x into a private prefix (never into /).
#
# Environment knobs: GPU_CHECK_STAGES (default "env deps build cpu gpu sanitize bench"),
#   BENCH_ARGS (extra arguments for bench_gemm), BUILD (build dir, default build-gpu),
#   BUILD_TARGETS (only these targets, e.g. "atom_gpu_tests bench_attention"), GPU_TEST_FILTER (gtest filter
#   for the gpu stage), SANITIZE_FILTER (gtest filter for compute-sanitizer), BENCH (which benchmarks:
#   default "gemm attention"; "fused" adds bench_fused), ATTN_BENCH_ARGS (extra arguments for bench_attention),
#   FUSED_BENCH_ARGS (extra arguments for bench_fused).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
STAGES=${GPU_CHECK_STAGES:-"env deps build gpu bench cpu sanitize"}
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
  "$BUILD/tests/gpu/atom_gpu_tests" ${GPU_TEST_FILTER:+--gtest_filter=$GPU_TEST_FILTER} 2>&1 | tee "$OUT/gpu-tests.log" | grep -E '^\[  (FAILED|PASSED|  OK|SKIPPED)|Failure|expected|error' | head -80
  if [ -z "${GPU_TEST_FILTER:-}" ]; then
    ctest --test-dir "$BUILD" -L gpu -j4 --timeout 600 >"$OUT/ctest-gpu.log" 2>&1
    rc=$?; SUMMARY+=("ctest -L gpu: rc=$rc, $(grep -E 'tests passed' "$OUT/ctest-gpu.log")")
  else
    SUMMARY+=("gpu tests ($GPU_TEST_FILTER): $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/gpu-tests.log" | tr '\n' ' ')")
  fi
fi

if has bench; then
  say "benchmark"
  BENCH=${BENCH:-gemm attention}
  if [[ " $BENCH " == *" gemm "* ]]; then
    "$BUILD/bench/bench_gemm" --json "$OUT/bench_gemm.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log" | tail -120
    if command -v gnuplot >/dev/null && [ -f bench/plot_gemm.sh ]; then bash bench/plot_gemm.sh "$OUT/bench_gemm.json" "$OUT/bench_gemm.png"; fi
  fi
  if [[ " $BENCH " == *" fused "* ]]; then
    "$BUILD/bench/bench_fused" --json "$OUT/bench_fused.json" ${FUSED_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-fused.log" | tail -80
  fi
  if [[ " $BENCH " == *" attention "* ]]; then
    "$BUILD/bench/bench_attention" --json "$OUT/bench_attention.json" ${ATTN_BENCH_ARGS:-} 2>&1 | tee "$OUT/bench-attention.log" | tail -80
    if command -v gnuplot >/dev/null && [ -f bench/plot_attention.sh ]; then bash bench/plot_attention.sh "$OUT/bench_attention.json" "$OUT/bench_attention.png"; fi
  fi
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
      ATOM_GPU_TEST_SMALL=1 timeout ${SANITIZE_TIMEOUT:-120} compute-sanitizer --tool $tool --error-exitcode 3 \
        "$BUILD/tests/gpu/atom_gpu_tests" --gtest_brief=1 --gtest_filter="${SANITIZE_FILTER:-GpuAtom.*:GpuAttention.*}" >"$OUT/sanitize-$tool.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && grep -E '=========' "$OUT/sanitize-$tool.log" | head -30; SUMMARY+=("compute-sanitizer $tool: rc=$rc ($(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize-$tool.log" | tail -1))")
    done
  else
    SUMMARY+=("compute-sanitizer: not found")
  fi
fi

say "summary"
for s in "${SUMMARY[@]}"; do echo "  $s" | tee -a "$LOG"; done
