#!/usr/bin/env bash
# bench/plot_attention.sh RESULTS.json OUT.png — decode GB/s (bytes moved) vs context per cache dtype, one
# panel per (model, batch), with the D2D copy rate as a line.
set -euo pipefail
json=$1; png=$2; tmp=$(mktemp -d)
python3 - "$json" "$tmp" <<'PY'
import json, sys, collections
d = json.load(open(sys.argv[1])); out = sys.argv[2]
rows = collections.defaultdict(dict); panels = []
for r in d["results"]:
    if r["kind"] != "decode" or r["gbs"] == 0: continue
    p = f'{r["model"]} B={r["B"]}'
    if p not in panels: panels.append(p)
    rows[(p, r["ctx"])][r["dtype"]] = r["gbs"]
for i, p in enumerate(panels):
    with open(f"{out}/{i}.dat", "w") as f:
        for (pp, ctx), v in sorted(rows.items(), key=lambda kv: kv[0][1]):
            if pp == p: f.write(f"{ctx} " + " ".join(str(v.get(k, "?")) for k in ["int4", "int8", "fp16"]) + "\n")
open(f"{out}/panels", "w").write("".join(p + "\n" for p in panels))
open(f"{out}/meta", "w").write(f'{d["device"]}|{d["d2d_gbs"]}')
PY
n=$(wc -l <"$tmp/panels")
IFS='|' read -r dev d2d <"$tmp/meta" || true  # no trailing newline
{
  echo "set terminal pngcairo size 1600,$(((n + 1) / 2 * 380)); set output '$png'"
  echo "set multiplot layout $(((n + 1) / 2)),2 title 'Paged decode attention, GB/s on bytes moved ($dev; D2D copy $d2d GB/s)'"
  echo "set logscale x 2; set key left top; set xlabel 'context'; set ylabel 'GB/s'; set grid; set yrange [0:*]; set datafile missing '?'"
  i=0
  while IFS= read -r p; do
    echo "set title '$p'; plot '$tmp/$i.dat' u 1:2 w lp t 'int4', '' u 1:3 w lp t 'int8', '' u 1:4 w lp t 'fp16', $d2d w l dt 2 t 'D2D copy'"
    i=$((i + 1))
  done <"$tmp/panels"
  echo "unset multiplot"
} | gnuplot
rm -rf "$tmp"
