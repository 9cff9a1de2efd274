#!/usr/bin/env bash
# The main job (README): set up, build, then on the real model (SmolLM2-135M-Instruct):
#   1. quantize it with Atom (W4A4 + 128 INT8 outliers, group 128, clipping, GPTQ, INT4 KV),
#   2. report WikiText-2 perplexity of the fp32 reference and of the Atom checkpoint,
#   3. generate text with the Atom checkpoint.
# CPU defaults are small so this finishes in minutes on 2 cores; --full uses the paper's
# settings (128 x 2048 calibration tokens, every WikiText-2 window). With a visible NVIDIA GPU (and a
# CUDA build) perplexity and generation run there (--device cuda, every window by default: seconds);
# quantization runs on the CPU either way. --device cpu forces the CPU.
# Usage: scripts/run.sh [--full] [--windows N] [--samples N] [--seqlen N] [--model PATH] [--device cpu|cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
# Busy-waiting OpenMP threads cost far more than they save on a small shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
WINDOWS=""; SAMPLES=8; SEQLEN=512; MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf; DEVICE=auto
while [ $# -gt 0 ]; do
  case "$1" in
    --full) WINDOWS=0; SAMPLES=128; SEQLEN=2048 ;;
    --windows) WINDOWS=$2; shift ;;
    --samples) SAMPLES=$2; shift ;;
    --seqlen) SEQLEN=$2; shift ;;
    --model) MODEL=$2; shift ;;
    --device) DEVICE=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
bash scripts/setup.sh --no-python
BUILD=${ATOM_BUILD_DIR:-build}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release ${ATOM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target atom
ATOM="$BUILD/atom"
if [ "$DEVICE" = auto ]; then
  DEVICE=cpu
  if nvidia-smi -L >/dev/null 2>&1 && "$ATOM" serve --help 2>/dev/null | grep -q "cpu, cuda"; then DEVICE=cuda; fi
fi
[ -n "$WINDOWS" ] || { [ "$DEVICE" = cuda ] && WINDOWS=0 || WINDOWS=4; }
echo "== device: $DEVICE"
DATA=../shared/data/wikitext2-test.txt
CALIB=../shared/data/wikitext2-valid-tokenized.txt
CKPT=out/smollm2-atom
mkdir -p out

echo "== 1. quantize (Atom W4A4 + O128 INT8, group 128, GPTQ, INT4 KV; calibration ${SAMPLES} x ${SEQLEN}) =="
"$ATOM" quantize --model "$MODEL" --out "$CKPT" --calib "$CALIB" --method atom --samples "$SAMPLES" --seqlen "$SEQLEN"

echo "== 2. perplexity, WikiText-2 test, ctx 2048, windows: ${WINDOWS/#0/all} =="
echo "-- reference (weights dequantized from the Q4_1 GGUF; fp32 on the CPU, fp16 on the GPU)"
"$ATOM" ppl --model "$MODEL" --data "$DATA" --ctx 2048 --max-windows "$WINDOWS" --device "$DEVICE" --json out/ppl-fp32.json
echo "-- Atom W4A4 + INT4 KV"
"$ATOM" ppl --model "$CKPT" --data "$DATA" --ctx 2048 --max-windows "$WINDOWS" --device "$DEVICE" --json out/ppl-atom.json

echo "== 3. generate with the Atom checkpoint (chat, greedy) =="
"$ATOM" generate --model "$CKPT" --device "$DEVICE" --chat --max-tokens 64 \
  --prompt "Explain in two sentences why quantizing a language model to 4 bits makes it faster."
