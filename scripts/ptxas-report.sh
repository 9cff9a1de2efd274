#!/usr/bin/env bash
# scripts/ptxas-report.sh FILE.cu [FILE.cu ...] — registers, spills and ptxas remarks of every kernel instance
# in the given CUDA sources, compiled for sm_90a as the build does (no GPU needed). For the off-device loop:
# check a kernel change for spills or serialized wgmma (C75xx remarks) before spending device time on it.
set -uo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
[ $# -ge 1 ] || { echo "usage: $0 FILE.cu [FILE.cu ...]" >&2; exit 2; }
for f in "$@"; do
  echo "== $f"
  "$NVCC" -I src -O3 --generate-code=arch=compute_90a,code=[sm_90a] -Xptxas=-v --expt-relaxed-constexpr -std=c++20 \
    -x cu -c "$f" -o /dev/null 2>&1 | python3 -c '
import re, sys, subprocess
rows, remarks, cur = [], {}, None
for line in sys.stdin:
    m = re.search(r"Compiling entry function .(_Z\S+?).\s+for", line)
    if m:
        cur = m.group(1); continue
    m = re.search(r"\((C75\d\d)\).*function .(_Z\S+?).$", line.strip())
    if m:
        remarks.setdefault(m.group(2), set()).add(m.group(1)); continue
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and cur: spill = (m.group(1), m.group(2)); continue
    m = re.search(r"Used (\d+) registers", line)
    if m and cur:
        rows.append((cur, m.group(1), spill)); cur = None
    if "error" in line: print(line, end="")
names = subprocess.run(["c++filt"], input="\n".join(r[0] for r in rows), capture_output=True, text=True).stdout.split("\n")
for (mangled, regs, (st, ld)), name in zip(rows, names):
    name = re.sub(r"atom::cuda::(gemm_detail::)?(\(anonymous namespace\)::)?", "", name)
    flag = "" if st == "0" and ld == "0" else f"  SPILL {st}/{ld} B"
    rem = " ".join(sorted(remarks.get(mangled, [])))
    rem = "  " + rem if rem else ""
    print(f"{regs:>4} regs{flag}{rem}  {name[:150]}")
'
done
