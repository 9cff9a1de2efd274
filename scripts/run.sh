#!/usr/bin/env bash
# The main job (README): set up, build, then on the real model (SmolLM2-135M-Instruct):
#   1. perplexity of the fp32 reference on WikiText-2 (a few windows on CPU; --full for all),
#   2. generate text from a chat prompt.
# On a CPU-only machine the defaults finish in minutes on 2 cores.
# Usage: scripts/run.sh [--full] [--windows N] [--model PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOWS=4; MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
while [ $# -gt 0 ]; do
  case "$1" in
    --full) WINDOWS=0 ;;
    --windows) WINDOWS=$2; shift ;;
    --model) MODEL=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh --no-python
BUILD=${ATOM_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ATOM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target atom
ATOM="$BUILD/atom"
DATA=../shared/data/wikitext2-test.txt
mkdir -p out

echo "== perplexity (fp32 reference, WikiText-2 test, ctx 2048, windows: ${WINDOWS/#0/all}) =="
"$ATOM" ppl --model "$MODEL" --data "$DATA" --ctx 2048 --max-windows "$WINDOWS" --json out/ppl-fp32.json

echo "== generate (chat, greedy) =="
"$ATOM" generate --model "$MODEL" --chat --max-tokens 64 \
  --prompt "Explain in two sentences why quantizing a language model to 4 bits makes it faster."
