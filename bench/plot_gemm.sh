#!/usr/bin/env bash
# bench/plot_gemm.sh RESULTS.json OUT.png — TOPS-equivalent vs M per method, one panel per shape.
set -euo pipefail
json=$1; png=$2; tmp=$(mktemp -d)
python3 - "$json" "$tmp" <<'PY'
import json, sys, collections
d = json.load(open(sys.argv[1])); out = sys.argv[2]
rows = collections.defaultdict(dict); shapes = []
for r in d["results"]:
    if r["m"] == 0: continue
    if r["shape"] not in shapes: shapes.append(r["shape"])
    rows[(r["shape"], r["m"])][r["method"]] = r["tops"]
methods = ["atom-w4a4", "cublas-fp16", "cublaslt-int8", "cublaslt-fp8", "atom-w4a4-tma"]
for i, s in enumerate(shapes):
    with open(f"{out}/{i}.dat", "w") as f:
        for (sh, m), v in sorted(rows.items(), key=lambda kv: kv[0][1]):
            if sh == s: f.write(f"{m} " + " ".join(str(v.get(k, "?")) for k in methods) + "\n")
open(f"{out}/shapes", "w").write("".join(s + "\n" for s in shapes))
PY
n=$(wc -l <"$tmp/shapes")
{
  echo "set terminal pngcairo size 1600,$((n / 2 * 380 + 380)); set output '$png'"
  echo "set multiplot layout $(((n + 1) / 2)),2 title 'Atom W4A4 vs cuBLAS (TOPS-equivalent, $(python3 -c "import json;print(json.load(open('$json'))['device'])"))'"
  echo "set logscale x 2; set key left top; set xlabel 'M'; set ylabel 'TOPS'; set grid; set datafile missing '?'"
  i=0
  while IFS= read -r s; do
    echo "set title '$s'; plot '$tmp/$i.dat' u 1:2 w lp t 'ours W4A4', '' u 1:3 w lp t 'cuBLAS FP16', '' u 1:4 w lp t 'cuBLASLt INT8', '' u 1:5 w lp t 'cuBLASLt FP8', '' u 1:6 w lp dt 2 t 'ours, config 19 (forced)'"
    i=$((i + 1))
  done <"$tmp/shapes"
  echo "unset multiplot"
} | gnuplot
rm -rf "$tmp"
