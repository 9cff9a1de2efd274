#!/usr/bin/env bash
# bench/plot_prefill.sh OUT.png RESULTS.json [RESULTS.json ...] — prefill TFLOPS per benchmark cell, one bar
# per (kernel, cache dtype) found in the bench_attention JSON files (e.g. an A/B pair of --prefill-kernel runs),
# with the issue-5 target (50% of the cuBLAS FP16 rate of the first file) as a dashed line.
set -euo pipefail
png=$1; shift
[ $# -ge 1 ] || { echo "usage: $0 OUT.png RESULTS.json [RESULTS.json ...]" >&2; exit 2; }
tmp=$(mktemp -d)
python3 - "$tmp" "$@" <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
cells, series, val, meta = [], [], {}, None
for fn in files:
    d = json.load(open(fn))
    meta = meta or (d["device"], d["cublas_fp16_tflops"])
    for r in d["results"]:
        if r["kind"] != "prefill" or r["tflops"] == 0: continue
        cell = f'{r["model"]} B{r["B"]} {r["ctx"]}/{r["nq"]}'
        s = f'{d["prefill_kernel"]} {r["dtype"]}'
        if cell not in cells: cells.append(cell)
        if s not in series: series.append(s)
        val[(cell, s)] = r["tflops"]
with open(f"{out}/data", "w") as f:
    f.write('cell ' + " ".join(f'"{s}"' for s in series) + "\n")
    for c in cells:
        f.write(f'"{c}" ' + " ".join(str(val.get((c, s), "?")) for s in series) + "\n")
open(f"{out}/meta", "w").write(f"{meta[0]}|{meta[1]}|{len(series)}")
PY
IFS='|' read -r dev cublas nser <"$tmp/meta" || true  # no trailing newline
{
  echo "set terminal pngcairo size 1500,600; set output '$png'"
  echo "set title 'Causal prefill attention, TFLOPS ($dev; cuBLAS FP16 ${cublas} TFLOPS, dashed: 50% of it)'"
  echo "set style data histogram; set style histogram clustered gap 1; set style fill solid 0.8 border -1"
  echo "set ylabel 'TFLOPS'; set yrange [0:*]; set grid y; set key outside right; set xtics rotate by -25 font ',9'"
  echo "set datafile missing '?'"
  plot="plot for [i=2:$((nser + 1))] '$tmp/data' u i:xtic(1) t columnheader(i)"
  echo "$plot, $cublas * 0.5 w l dt 2 lc rgb 'black' t '50% of cuBLAS FP16'"
} | gnuplot
rm -rf "$tmp"
