#!/usr/bin/env python3
"""Reference WikiText-2 perplexity with transformers (fp32), GPTQ/Atom protocol.

Protocol (GPTQ `llama_eval` / Atom):
  * tokenize the WHOLE file as one string (read as is; no BOS added -- SmolLM2's GGUF says
    add_bos_token=false);
  * nsamples = numel // ctx non-overlapping windows (the trailing partial window is dropped);
  * each window evaluated independently (fresh attention, positions 0..ctx-1);
  * NLL over the ctx-1 shifted predictions of each window (tokens 1..ctx-1 from 0..ctx-2);
  * ppl = exp(mean NLL over all predicted tokens). (GPTQ writes exp(sum(mean_w * ctx) / (n * ctx)),
    the same number since every window has ctx-1 predictions.)

Token ids come from one or more tokenizers (--tokenizer, comma-separated):
  atom      `<atom> tokenize --file F --ids-only` (Atom's own tokenizer; the ids Atom's ppl uses)
  ref       transformers' GGUF tokenizer with SmolLM2's real pre-tokenizer
            (Digits(individual_digits) + ByteLevel) -- see convert_gguf_to_hf.build_reference_tokenizer
  hf-gguf   transformers' GGUF tokenizer as transformers builds it (ByteLevel only: "smollm" unknown to it)
  file:P    whitespace-separated ids read from P
Identical id streams are evaluated once and reported for every tokenizer that produced them.

Usage:
  python3 tools/reference/ref_ppl.py [--model models/SmolLM2-135M-Instruct-hf | X.gguf]
      [--data /work/shared/data/wikitext2-test.txt] [--ctx 2048] [--max-windows N]
      [--tokenizer atom,ref] [--atom build/atom] [--json OUT] [--threads 2] [--kv-bits 4|8|16]
  --kv-bits 4|8: K (after RoPE) and V fake-quantized per token and head (kv_fake_quant.py): the outside
  check of `atom ppl --kv-bits`.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

DEFAULT_GGUF = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_HF = os.path.join(REPO, "models", "SmolLM2-135M-Instruct-hf")
DEFAULT_DATA = "/work/shared/data/wikitext2-test.txt"


def find_atom(explicit=None):
    for c in [explicit, os.environ.get("ATOM_BIN"), os.path.join(REPO, "build", "atom"),
              os.path.join(REPO, "build-ref", "atom")]:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def load_model(path):
    """fp32, eager attention. A .gguf goes through transformers' GGUF loader; a dir is a HF checkpoint."""
    from transformers import AutoModelForCausalLM

    if path.endswith(".gguf"):
        from convert_gguf_to_hf import load_gguf_model

        return load_gguf_model(path)
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def ids_atom(atom, model, data):
    out = subprocess.run([atom, "tokenize", "--model", model, "--file", data, "--ids-only"],
                         check=True, capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def ids_hf(gguf, text, smollm_pre):
    from convert_gguf_to_hf import build_reference_tokenizer

    tok = build_reference_tokenizer(gguf, smollm_pre=smollm_pre)
    return tok.encode(text, add_special_tokens=False).ids


def get_ids(spec, args, text):
    if spec == "atom":
        atom = find_atom(args.atom)
        if not atom:
            raise SystemExit("ref_ppl: no atom binary (build/atom); use --tokenizer ref or --atom PATH")
        return ids_atom(atom, args.tokenizer_model, args.data)
    if spec == "ref":
        return ids_hf(args.gguf, text, True)
    if spec == "hf-gguf":
        return ids_hf(args.gguf, text, False)
    if spec.startswith("file:"):
        with open(spec[5:]) as f:
            return [int(x) for x in f.read().split()]
    raise SystemExit(f"ref_ppl: unknown tokenizer {spec!r}")


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n if len(a) != len(b) else -1


@torch.inference_mode()
def evaluate(model, ids, ctx, max_windows, log=print):
    total = len(ids) // ctx
    n = min(total, max_windows) if max_windows and max_windows > 0 else total
    if n == 0:
        raise SystemExit(f"ref_ppl: {len(ids)} tokens < one window of {ctx}")
    t = torch.tensor(ids[: n * ctx], dtype=torch.long).view(n, ctx)
    nll_sum = 0.0
    per_window = []
    t0 = time.time()
    for w in range(n):
        x = t[w: w + 1]
        logits = model(x, use_cache=False).logits[0].float()  # [ctx, V]
        lp = torch.log_softmax(logits[:-1].double(), dim=-1)
        nll = -lp.gather(1, x[0, 1:].unsqueeze(1)).sum().item()
        per_window.append(nll / (ctx - 1))
        nll_sum += nll
        el = time.time() - t0
        log(f"  window {w + 1}/{n}: nll {nll / (ctx - 1):.6f}  running ppl "
            f"{math.exp(nll_sum / ((w + 1) * (ctx - 1))):.4f}  {el:.0f}s (eta {el / (w + 1) * (n - w - 1):.0f}s)")
    seconds = time.time() - t0
    predicted = n * (ctx - 1)
    mean_nll = nll_sum / predicted
    return dict(ppl=math.exp(mean_nll), mean_nll=mean_nll, windows=n, total_windows=total,
                predicted_tokens=predicted, ctx=ctx, seconds=seconds, per_window_nll=per_window)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_HF, help="HF dir or .gguf (default: the converted HF dir)")
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="GGUF whose vocabulary the ref/hf-gguf tokenizers use")
    ap.add_argument("--tokenizer-model", default=DEFAULT_GGUF, help="--model passed to `atom tokenize`")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--tokenizer", default="atom,ref",
                    help="comma list of atom|ref|hf-gguf|file:PATH (default atom,ref; atom skipped if no binary)")
    ap.add_argument("--atom", default=None, help="atom binary (default build/atom, build-ref/atom, $ATOM_BIN)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--save-ids", default=None, help="write the first tokenizer's ids here (one line)")
    ap.add_argument("--kv-bits", type=int, default=16, choices=[4, 8, 16],
                    help="fake-quantize K (after RoPE) and V per token and head (kv_fake_quant.py); 16 = off")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    if not os.path.exists(args.model) and args.model == DEFAULT_HF:
        args.model = DEFAULT_GGUF
    text = read_text(args.data)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    print(f"[ref_ppl] data {args.data}: {len(text.encode('utf-8'))} bytes sha256 {sha[:16]}")

    specs = [s.strip() for s in args.tokenizer.split(",") if s.strip()]
    if "atom" in specs and not find_atom(args.atom) and len(specs) > 1:
        print("[ref_ppl] no atom binary: skipping tokenizer 'atom'")
        specs.remove("atom")
    streams = {}
    for s in specs:
        t0 = time.time()
        streams[s] = get_ids(s, args, text)
        print(f"[ref_ppl] tokenizer {s}: {len(streams[s])} tokens ({time.time() - t0:.1f}s)")
    if args.save_ids:
        with open(args.save_ids, "w") as f:
            f.write(" ".join(map(str, streams[specs[0]])) + "\n")

    # group identical streams
    groups = []  # (ids, [names])
    for s in specs:
        for g in groups:
            if g[0] == streams[s]:
                g[1].append(s)
                break
        else:
            groups.append((streams[s], [s]))
    comparisons = {}
    for i, a in enumerate(specs):
        for b in specs[i + 1:]:
            d = first_diff(streams[a], streams[b])
            comparisons[f"{a} vs {b}"] = dict(identical=d < 0, first_diff=d,
                                              len_a=len(streams[a]), len_b=len(streams[b]))
            if d >= 0:
                print(f"[ref_ppl] tokenizers {a} and {b} differ first at token {d} "
                      f"({len(streams[a])} vs {len(streams[b])} tokens): "
                      f"{streams[a][max(0, d - 3):d + 5]} vs {streams[b][max(0, d - 3):d + 5]}")
            else:
                print(f"[ref_ppl] tokenizers {a} and {b}: identical ids")

    t0 = time.time()
    model = load_model(args.model)
    print(f"[ref_ppl] model {args.model} loaded in {time.time() - t0:.1f}s; threads {torch.get_num_threads()}")
    if args.kv_bits < 16:
        import kv_fake_quant
        kv_fake_quant.install(model, args.kv_bits)
        print(f"[ref_ppl] K (after RoPE) and V fake-quantized to {args.kv_bits} bits per token and head")

    results = []
    for ids, names in groups:
        print(f"[ref_ppl] evaluating ids of {'/'.join(names)}: {len(ids)} tokens, ctx {args.ctx}")
        r = evaluate(model, ids, args.ctx, args.max_windows)
        r.update(tokenizers=names, tokens=len(ids))
        results.append(r)
        print(f"[ref_ppl] RESULT tokenizer={'/'.join(names)} ppl={r['ppl']:.4f} mean_nll={r['mean_nll']:.6f} "
              f"windows={r['windows']}/{r['total_windows']} tokens={r['tokens']} "
              f"predicted={r['predicted_tokens']} seconds={r['seconds']:.1f}")

    if args.json:
        out = dict(tool="tools/reference/ref_ppl.py", date=datetime.datetime.now().isoformat(timespec="seconds"),
                   model=args.model, data=args.data, data_sha256=sha, ctx=args.ctx,
                   max_windows=args.max_windows, dtype="float32", attn="eager", kv_bits=args.kv_bits,
                   torch=torch.__version__, transformers=__import__("transformers").__version__,
                   threads=torch.get_num_threads(), tokenizer_comparisons=comparisons, results=results)
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"[ref_ppl] wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
