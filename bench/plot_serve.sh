#!/usr/bin/env bash
# bench/plot_serve.sh OUT.png RESULTS.json... — bench_serve_gpu results: output tokens/s and TPOT p50 per
# mode, one group of bars per (shape, workload) run.
set -euo pipefail
png=$1; shift; tmp=$(mktemp -d)
python3 - "$tmp" "$@" <<'PY'
import json, sys
out, files = sys.argv[1], sys.argv[2:]
modes = ["fp16", "w8a8", "atom"]
with open(f"{out}/tps.dat", "w") as a, open(f"{out}/tpot.dat", "w") as b:
    for f in files:
        d = json.load(open(f))
        runs = d.get("runs", [d])
        for r in runs:
            res = {x["mode"]: x for x in r["results"]}
            wl = r["workload"].replace("fixed ", "").replace("sharegpt-like", "ShareGPT")
            label = f'{r["shape"]}\\n{wl} B{r["max_num_seqs"]}'
            a.write(f'"{label}" ' + " ".join(str(res[m]["output_tok_s"]) if m in res else "?" for m in modes) + "\n")
            b.write(f'"{label}" ' + " ".join(str(res[m]["tpot_p50_ms"]) if m in res else "?" for m in modes) + "\n")
PY
gnuplot <<GP
set terminal pngcairo size 1500,560 noenhanced; set output '$png'
set bmargin 5
set multiplot layout 1,2 title 'bench_serve_gpu: synthetic Llama shapes, fp16 / w8a8 / atom side by side'
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8 border -1
set datafile missing '?'; set grid ytics; set key left top; set yrange [0:*]
set title 'output tokens/s'; plot '$tmp/tps.dat' u 2:xtic(1) t 'fp16', '' u 3 t 'w8a8', '' u 4 t 'atom'
set title 'TPOT p50 (ms)'; plot '$tmp/tpot.dat' u 2:xtic(1) t 'fp16', '' u 3 t 'w8a8', '' u 4 t 'atom'
unset multiplot
GP
rm -rf "$tmp"
