#!/usr/bin/env bash
# The Atom ablation ladder (paper Table 4) on one model: quantize each step, measure WikiText-2
# perplexity, write out/ladder/ladder.json and print a markdown table.
# Usage: scripts/ladder.sh [--atom BIN] [--model PATH] [--samples N] [--seqlen N] [--windows N]
#                          [--threads N] [--out DIR] [--steps "fp16 rtn ..."] [--device cpu|cuda]
# --device cuda quantizes and measures on the GPU: only the steps the GPU model runs (fp16, w8a8, group128,
# clip, clip-search, gptq, kv4: group-128 INT4 with INT8 outliers, post-RoPE K). --windows 0: the whole file.
set -euo pipefail
cd "$(dirname "$0")/.."
# Busy-waiting OpenMP threads cost far more than they save on a small shared machine.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ATOM=build/atom; MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf; SAMPLES=16; SEQLEN=2048; WINDOWS=16
THREADS=0; OUT=out/ladder; DEVICE=cpu; DATA=${ATOM_DATA:-../shared/data/wikitext2-test.txt}
CALIB=${ATOM_CALIB:-../shared/data/wikitext2-valid-tokenized.txt}
STEPS="fp16 w8a8 rtn outliers-fp16 outliers-int8 group128 clip gptq kv4 kv4-prerope"
while [ $# -gt 0 ]; do
  case "$1" in
    --atom) ATOM=$2; shift ;; --model) MODEL=$2; shift ;; --samples) SAMPLES=$2; shift ;;
    --seqlen) SEQLEN=$2; shift ;; --windows) WINDOWS=$2; shift ;; --threads) THREADS=$2; shift ;;
    --out) OUT=$2; shift ;; --steps) STEPS=$2; shift ;; --device) DEVICE=$2; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "ladder.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
COMMON=(--model "$MODEL" --calib "$CALIB" --samples "$SAMPLES" --seqlen "$SEQLEN" --threads "$THREADS" --device "$DEVICE")

# step name -> quantize flags ("" = the fp model itself)
flags() {
  case "$1" in
    fp16) echo "" ;;
    w8a8) echo "--method w8a8" ;;
    rtn) echo "--method rtn" ;;                                    # W4A4 per-token x per-channel
    outliers-fp16) echo "--method rtn --outliers 128 --outlier-bits 16" ;;
    outliers-int8) echo "--method rtn --outliers 128" ;;
    group128) echo "--method rtn --outliers 128 --group 128" ;;
    clip) echo "--method rtn --outliers 128 --group 128 --w-clip 0.85 --a-clip 0.9" ;;
    clip-search) echo "--method rtn --outliers 128 --group 128 --w-clip search --a-clip 0.9" ;;
    gptq) echo "--method atom --kv-bits 16" ;;                     # Atom without KV quantization
    kv4) echo "--method atom --kv-bits 4" ;;                       # full Atom
    kv4-prerope) echo "--method atom --kv-bits 4 --kv-pre-rope" ;;
    *) echo "ladder.sh: unknown step $1" >&2; exit 2 ;;
  esac
}

echo "[" > "$OUT/ladder.json"
first=1
for step in $STEPS; do
  f=$(flags "$step")
  model="$MODEL"; qsec=0
  if [ -n "$f" ]; then
    model="$OUT/ckpt-$step"
    t0=$SECONDS
    # shellcheck disable=SC2086
    "$ATOM" quantize "${COMMON[@]}" $f --out "$model" 2>"$OUT/quantize-$step.log" >/dev/null
    qsec=$((SECONDS - t0))
  fi
  "$ATOM" ppl --model "$model" --data "$DATA" --ctx 2048 --max-windows "$WINDOWS" --threads "$THREADS" --device "$DEVICE" \
    --json "$OUT/ppl-$step.json" 2>"$OUT/ppl-$step.log" >/dev/null
  ppl=$(python3 -c "import json;print(round(json.load(open('$OUT/ppl-$step.json'))['ppl'],4))")
  echo "$step: ppl $ppl (quantize ${qsec}s) flags: ${f:-none}"
  [ $first = 1 ] || echo "," >> "$OUT/ladder.json"
  first=0
  printf '{"step": "%s", "flags": "%s", "ppl": %s, "quantize_seconds": %s}' "$step" "$f" "$ppl" "$qsec" >> "$OUT/ladder.json"
  rm -rf "$OUT/ckpt-$step"
  [ -n "${LADDER_TARBALL:-}" ] && tar czf "$LADDER_TARBALL" -C "$(dirname "$OUT")" "$(basename "$OUT")"
done
echo "]" >> "$OUT/ladder.json"
echo
echo "| step | flags | ppl (WikiText-2, ctx 2048, $WINDOWS windows) | quantize s |"
echo "|---|---|---|---|"
python3 -c "
import json
for r in json.load(open('$OUT/ladder.json')):
    print(f\"| {r['step']} | \`{r['flags'] or '-'}\` | {r['ppl']:.4f} | {float(r['quantize_seconds']):.0f} |\")"
