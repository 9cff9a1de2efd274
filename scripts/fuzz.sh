#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs one of them.
#   scripts/fuzz.sh TARGET SECONDS        e.g. scripts/fuzz.sh fuzz_gguf 600
#   scripts/fuzz.sh --list                lists the fuzz targets
# Corpus: build-fuzz/corpus/TARGET (kept between runs), seeded with small valid files from
# fuzz/make_seeds.py (safetensors, gguf) and any checked-in fuzz/corpus/TARGET/. A dictionary
# fuzz/TARGET.dict is used when present. The full libFuzzer output goes to
# build-fuzz/logs/TARGET.log, a short summary to docs/fuzz/TARGET.log, crash reproducers to
# build-fuzz/artifacts/TARGET/. Exit status: 0 = no crash, 1 = crash/leak/timeout found.
# Environment: FUZZ_MAX_LEN (default 65536), FUZZ_JOBS (parallel workers, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."

list_targets() { sed -n 's/^atom_add_fuzzer(\([A-Za-z0-9_]*\) .*/\1/p' fuzz/CMakeLists.txt; }

if [ "${1:-}" = "--list" ]; then list_targets; exit 0; fi
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
target=$1
seconds=$2
if ! list_targets | grep -qx "$target"; then
  echo "fuzz.sh: unknown target '$target' (known: $(list_targets | tr '\n' ' '))" >&2
  exit 2
fi

B=build-fuzz
# Debug keeps assertions on; the fuzz CMakeLists adds -O1 and the sanitizers itself.
if [ ! -f "$B/build.ninja" ]; then
  cmake -S . -B "$B" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DATOM_BUILD_FUZZERS=ON -DATOM_BUILD_TESTS=OFF -DATOM_CUDA=OFF >/dev/null
fi
cmake --build "$B" --target "$target"

# Seeds: regenerate the small valid files each run (cheap), then copy into the corpus.
python3 fuzz/make_seeds.py "$B/seeds" >/dev/null
corpus="$B/corpus/$target"
mkdir -p "$corpus" "$B/artifacts/$target" "$B/logs" docs/fuzz
kind=${target#fuzz_}
[ -d "$B/seeds/$kind" ] && cp -n "$B/seeds/$kind"/* "$corpus"/ 2>/dev/null || true
[ -d "fuzz/corpus/$target" ] && cp -n "fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true

args=("$corpus" -max_total_time="$seconds" -max_len="${FUZZ_MAX_LEN:-65536}" -timeout=10
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$B/artifacts/$target/")
[ -f "fuzz/$target.dict" ] && args+=(-dict="fuzz/$target.dict")
jobs=${FUZZ_JOBS:-1}
[ "$jobs" -gt 1 ] && args+=(-fork="$jobs")

log="$B/logs/$target.log"
echo "fuzz.sh: running $target for ${seconds}s (log: $log)"
start=$(date +%s)
set +e
"$B/fuzz/$target" "${args[@]}" >"$log" 2>&1
rc=$?
set -e
elapsed=$(( $(date +%s) - start ))

# Summary for docs/: what ran, the final coverage line, libFuzzer's stats, and any crash.
summary="docs/fuzz/$target.log"
{
  echo "target:   $target"
  echo "date:     $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit:   $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (+local changes)')"
  echo "compiler: $(clang++ --version | head -1)"
  echo "flags:    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all"
  echo "asked:    ${seconds}s   ran: ${elapsed}s   exit status: $rc"
  echo "corpus:   $(ls "$corpus" | wc -l) files in $corpus"
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | tail -2 || true
  grep -E '^stat::' "$log" || true
  if [ $rc -ne 0 ]; then
    echo "RESULT:   FAILURE"
    grep -E 'ERROR:|runtime error|SUMMARY:|Test unit written|deadly signal' "$log" | head -20 || true
  else
    echo "RESULT:   OK (no crash, no sanitizer report)"
  fi
} >"$summary"
cat "$summary"
[ $rc -eq 0 ] || exit 1
