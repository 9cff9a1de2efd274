#!/usr/bin/env bash
# Prepares, on the dev box, what scripts/gpu-check.sh needs carried to the device machine (idempotent):
#   .debs/      Debian bookworm packages of the libraries the device lacks (fmt, spdlog, gtest, ...), which
#               gpu-check.sh unpacks with dpkg -x into a private prefix;
#   .devcarry/  the real model in two pieces and the WikiText-2 files, for the "stash" + "real" / "accuracy"
#               stages. One call carries at most 64 MiB: m1 (38.5 MB) goes with .debs (24 MB), m2 (the
#               other 59.9 MB) with data (2.4 MB) in the next call, while the machine is warm.
# Usage: scripts/device-carry.sh [--no-model]
set -euo pipefail
cd "$(dirname "$0")/.."
want_model=1
for a in "$@"; do
  case "$a" in
    --no-model) want_model=0 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "device-carry.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

DEBS=(libfmt-dev libfmt9 libspdlog-dev libspdlog1.10 nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0
  libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libsentencepiece-dev libsentencepiece0 libopenblas-openmp-dev
  libopenblas0-openmp libopenblas-dev liblapacke liblapacke-dev libtmglib3 libgfortran5 libquadmath0 libgtest-dev
  libgmock-dev googletest pkgconf pkgconf-bin libpkgconf3 libcpp-httplib-dev libcpp-httplib0.11 libssl-dev libssl3
  libbrotli-dev libbrotli1 zlib1g-dev zlib1g libbenchmark-dev libbenchmark1debian)
have=$( (ls .debs/*.deb 2>/dev/null || true) | wc -l)
if [ "$have" -lt ${#DEBS[@]} ]; then
  mkdir -p .debs
  (cd .debs && apt-get download "${DEBS[@]}" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
fi
echo "[device-carry] .debs: $(ls .debs/*.deb | wc -l) packages, $(du -sh .debs | cut -f1)"

if [ $want_model = 1 ]; then
  MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
  [ -s "$MODEL" ] || bash scripts/setup.sh --no-python
  mkdir -p .devcarry/m1 .devcarry/m2 .devcarry/data
  head -c 38500000 "$MODEL" >.devcarry/m1/part-1
  tail -c +38500001 "$MODEL" >.devcarry/m2/part-2
  cp ../shared/data/wikitext2-test.txt ../shared/data/wikitext2-valid-tokenized.txt .devcarry/data/
  cat .devcarry/m1/part-1 .devcarry/m2/part-2 | cmp -s - "$MODEL" || { echo "[device-carry] pieces do not reassemble" >&2; exit 1; }
  echo "[device-carry] .devcarry: $(du -sh .devcarry/m1 | cut -f1) + $(du -sh .devcarry/m2 | cut -f1) + data"
fi
