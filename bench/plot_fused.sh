#!/usr/bin/env bash
# bench/plot_fused.sh RESULTS.json OUT.png — the fused activation kernels' bandwidth as % of the same-run
# device-to-device copy of the same bytes, vs M, one panel per K, with issue 4's 85% target.
set -euo pipefail
json=$1; png=$2; tmp=$(mktemp -d)
python3 - "$json" "$tmp" <<'PY'
import json, sys, collections
d = json.load(open(sys.argv[1])); out = sys.argv[2]
rows = collections.defaultdict(dict); ks = []; kernels = []
for r in d["records"]:
    if r.get("n", 0) != 0: continue  # the W8A8 GEMM rows
    if r["k"] not in ks: ks.append(r["k"])
    if r["what"] not in kernels: kernels.append(r["what"])
    rows[(r["k"], r["m"])][r["what"]] = r["pct_copy"]
for i, k in enumerate(ks):
    with open(f"{out}/{i}.dat", "w") as f:
        for (kk, m), v in sorted(rows.items(), key=lambda kv: kv[0][1]):
            if kk == k: f.write(f"{m} " + " ".join(str(v.get(n, "?")) for n in kernels) + "\n")
open(f"{out}/ks", "w").write("".join(f"{k}\n" for k in ks))
open(f"{out}/kernels", "w").write("".join(n.replace("'", "") + "\n" for n in kernels))
PY
n=$(wc -l <"$tmp/ks")
{
  echo "set terminal pngcairo size 1600,480; set output '$png'"
  echo "set multiplot layout 1,$n title 'Fused activation kernels, % of device copy bandwidth ($(python3 -c "import json;print(json.load(open('$json'))['device'])"))'"
  echo "set logscale x 2; set key right top font ',9'; set xlabel 'M (rows)'; set ylabel '% of copy'; set yrange [0:*]; set grid; set datafile missing '?'"
  i=0
  while IFS= read -r k; do
    plot="plot 85 w l dt 2 lc rgb 'black' t 'target 85%'"
    c=2
    while IFS= read -r name; do plot+=", '$tmp/$i.dat' u 1:$c w lp t '$name'"; c=$((c + 1)); done <"$tmp/kernels"
    echo "set title 'K = $k'; $plot"
    i=$((i + 1))
  done <"$tmp/ks"
  echo "unset multiplot"
} | gnuplot
rm -rf "$tmp"
