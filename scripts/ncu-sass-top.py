#!/usr/bin/env python3
"""Where a warp-specialized kernel's time goes, from gpu-check's per-SASS ncu export (ncu-sass-N.csv.gz).

Splits the kernel's instructions into the regions after its setmaxnreg instructions (USETMAXREG: the consumer
branch takes registers, the producer branch gives them back), then prints per region the stall samples and
instructions executed, and its hottest instructions. An mbarrier wait shows as a SYNCS.PHASECHK try-wait or as
the `@!P BRA` spin right after it: in the consumer region that is waiting for data ("full"), in the producer
region waiting for a free stage ("empty").

  python3 scripts/ncu-sass-top.py bench/results/results-...-ncu-sass-prefill-ws-int8.csv.gz [--top 12]
"""
import argparse
import csv
import gzip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv_gz")
    ap.add_argument("--top", type=int, default=12, help="hottest instructions shown per region")
    args = ap.parse_args()
    with gzip.open(args.csv_gz, "rt") as f:
        rows = list(csv.reader(f))
    if len(rows) < 3 or "Source" not in rows[1]:
        raise SystemExit(f"{args.csv_gz}: not an ncu '--page source --csv' export")
    print(rows[0][1] if len(rows[0]) > 1 else rows[0][0])
    head, data = rows[1], rows[2:]
    src, samples, executed = head.index("Source"), head.index("Warp Stall Sampling (All Samples)"), head.index(
        "Instructions Executed")

    def num(r, i):
        v = r[i].replace(",", "")
        return int(v) if v.isdigit() else 0

    cuts = [k for k, r in enumerate(data) if "USETMAXREG" in r[src] or "SETMAXNREG" in r[src]]
    bounds = [0] + cuts + [len(data)]
    total = sum(num(r, samples) for r in data) or 1
    for a, b in zip(bounds, bounds[1:]):
        if a == b:
            continue
        name = data[a][src].strip() if a in cuts else "(prologue)"
        s = sum(num(r, samples) for r in data[a:b])
        e = sum(num(r, executed) for r in data[a:b])
        print(f"\n== region from {name[:60]}: {s} samples ({100.0 * s / total:.1f}%), {e} warp instructions executed")
        for k in sorted(range(a, b), key=lambda k: -num(data[k], samples))[: args.top]:
            n = num(data[k], samples)
            print(f"  {k:5d} {n:6d} ({100.0 * n / max(s, 1):4.1f}%) {num(data[k], executed):9d}  {data[k][src].strip()[:80]}")


if __name__ == "__main__":
    main()
