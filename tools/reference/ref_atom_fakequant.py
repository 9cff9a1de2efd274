#!/usr/bin/env python3
"""Outside check of Atom's W4A4 ladder rows: the same recipe written in PyTorch from docs/quant-format.md
(§2, §3) and the paper, sharing no code with Atom's C++, applied to transformers' fp32 Llama as fake
quantization (quantize -> dequantize), then WikiText-2 perplexity with ref_ppl.py's protocol.

Recipe (RTN weights, no GPTQ: the ladder's "+ clipping" row by default):
  calibration   `--samples` windows of `--seqlen` tokens at seeded offsets of the calibration text (numpy's
                RNG: not the same windows as `atom quantize`), sum of x^2 per input channel of every linear
  reorder       channels by ascending sum of x^2; the last `--outliers` are the outlier channels
  weights       per output row: normal channels in groups of `--group` along the reordered axis (the last
                group may be ragged), symmetric INT4, scale fp16(clip * max|w| / 7) with `--w-clip`;
                outlier columns symmetric INT8 per row (clip 1)
  activations   per token, the same layout: INT4 groups with `--a-clip`, outliers INT8 per token (clip 1)
  KV cache      fp32 (ref_ppl.py --kv-bits covers INT4 KV)
Compare with `atom quantize --method rtn --outliers 128 --group 128 --w-clip 0.85 --a-clip 0.9 --kv-bits 16`
+ `atom ppl` on the same windows (docs/results.md §2).

Usage: python3 tools/reference/ref_atom_fakequant.py [--model GGUF] [--calib FILE] [--samples 8]
         [--seqlen 1024] [--max-windows 4] [--outliers 128] [--group 128] [--w-clip 0.85] [--a-clip 0.9]
         [--json OUT] [--threads 2]
"""
import argparse
import datetime
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_ppl  # noqa: E402  (its loaders, tokenizer bridge and evaluation loop)


def fp16_scale(amax, clip, qmax):
    s = (clip * amax / qmax).to(torch.float16).to(torch.float32)
    return torch.where(torch.isinf(s), torch.full_like(s, 65504.0), s)


def sym_fake_quant(x, clip, qmin, qmax):
    """x [..., n]: one symmetric scale per last-axis row, quantize, dequantize (fp32)."""
    s = fp16_scale(x.abs().amax(dim=-1, keepdim=True), clip, float(qmax))
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.clamp(torch.round(x / safe), qmin, qmax)
    return torch.where(s > 0, q * safe, torch.zeros_like(x))


def atom_fake_quant(x, perm, n_outlier, group, clip):
    """x [..., K] in original channel order -> the same, every row through Atom's layout."""
    xr = x[..., perm]
    k_normal = xr.shape[-1] - n_outlier
    parts = []
    for g0 in range(0, k_normal, group):
        parts.append(sym_fake_quant(xr[..., g0:min(g0 + group, k_normal)], clip, -8, 7))
    if n_outlier:
        parts.append(sym_fake_quant(xr[..., k_normal:], 1.0, -127, 127))
    out = torch.empty_like(x)
    out[..., perm] = torch.cat(parts, dim=-1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=ref_ppl.DEFAULT_GGUF)
    ap.add_argument("--data", default=ref_ppl.DEFAULT_DATA)
    ap.add_argument("--calib", default="/work/shared/data/wikitext2-valid-tokenized.txt")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-windows", type=int, default=4)
    ap.add_argument("--outliers", type=int, default=128)
    ap.add_argument("--group", type=int, default=128)
    ap.add_argument("--w-clip", type=float, default=0.85)
    ap.add_argument("--a-clip", type=float, default=0.9)
    ap.add_argument("--atom", default=None, help="atom binary for the token ids (default build/atom)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    atom = ref_ppl.find_atom(args.atom)
    if not atom:
        print("ref_atom_fakequant: needs the atom binary for the token ids (build it, or --atom)", file=sys.stderr)
        return 2

    model = ref_ppl.load_model(args.model)
    linears = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n != "lm_head"}

    # ---- calibration: sum of x^2 per input channel ----
    calib_ids = ref_ppl.ids_atom(atom, args.model, args.calib)
    rng = np.random.default_rng(args.seed)
    sq = {n: torch.zeros(m.in_features, dtype=torch.float64) for n, m in linears.items()}
    def accumulate(name):
        def hook(_mod, inp):  # returns None: the input goes on unchanged
            x = inp[0].detach().double()
            sq[name].add_(x.pow(2).reshape(-1, x.shape[-1]).sum(0))
        return hook

    hooks = [m.register_forward_pre_hook(accumulate(n)) for n, m in linears.items()]
    t0 = time.time()
    with torch.no_grad():
        for _ in range(args.samples):
            o = int(rng.integers(0, len(calib_ids) - args.seqlen))
            model(torch.tensor([calib_ids[o:o + args.seqlen]]), use_cache=False)
    for h in hooks:
        h.remove()
    print(f"[fakequant] calibration {args.samples} x {args.seqlen} tokens in {time.time() - t0:.1f}s")

    # ---- weights once, activations on every call ----
    with torch.no_grad():
        for n, m in linears.items():
            perm = torch.argsort(sq[n], stable=True)
            m.weight.copy_(atom_fake_quant(m.weight.float(), perm, args.outliers, args.group, args.w_clip))
            m.register_forward_pre_hook(
                lambda mod, inp, perm=perm: (atom_fake_quant(inp[0], perm, args.outliers, args.group, args.a_clip),))

    ids = ref_ppl.ids_atom(atom, args.model, args.data)
    r = ref_ppl.evaluate(model, ids, args.ctx, args.max_windows)
    print(f"[fakequant] RESULT ppl={r['ppl']:.4f} windows={r['windows']} predicted={r['predicted_tokens']} "
          f"seconds={r['seconds']:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(tool="tools/reference/ref_atom_fakequant.py",
                           date=datetime.datetime.now().isoformat(timespec="seconds"), model=args.model,
                           calib=args.calib, samples=args.samples, seqlen=args.seqlen, seed=args.seed,
                           outliers=args.outliers, group=args.group, w_clip=args.w_clip, a_clip=args.a_clip,
                           torch=torch.__version__, result=r), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
