#!/usr/bin/env python3
"""Compare Atom's CPU logits with transformers' (fp32, eager attention) on identical token ids.

For each model path (default: the GGUF and the converted HF dir) and each of three prompts
  short   "The capital of France is"
  wiki    a ~200-token paragraph taken from the WikiText-2 test file
  chat    a ChatML prompt with <|im_start|>/<|im_end|> special tokens
the ids come from Atom's tokenizer (`atom tokenize --model M --text S --ids-only`), so both sides
see the same ids (tokenizer agreement is checked elsewhere; here it is only reported against the
reference tokenizer). Then
  transformers: model(ids).logits                      [n, vocab] fp32
  atom:         atom logits --model M --ids "..." --out F.npy   [n, vocab] fp32
and reports, per prompt: max |atom - ref|, that over max |ref| ("rel"), the per-position argmax
agreement, and the max error of the log-softmax (what perplexity sees).

Exit status: 1 if any max-abs error exceeds --threshold (default 1e-2), 2 on a tool failure.

Usage:
  python3 tools/reference/ref_logits.py [--atom build/atom] [--models GGUF,HFDIR] [--threshold 1e-2]
      [--json OUT] [--threads 2]
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ref_ppl import DEFAULT_DATA, DEFAULT_GGUF, DEFAULT_HF, find_atom, load_model, read_text  # noqa: E402

CHAT = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nWhat is 12 + 35? Answer in one sentence.<|im_end|>\n<|im_start|>assistant\n")


def wiki_paragraph(path, lo=800, hi=1200):
    """The first body paragraph (not a ' = heading = ' line) of lo..hi characters: ~200 tokens."""
    for line in read_text(path).split("\n"):
        s = line.strip()
        if lo <= len(line) <= hi and not s.startswith("="):
            return line
    raise SystemExit("ref_logits: no suitable paragraph in " + path)


def atom_tokenize(atom, model, text):
    r = subprocess.run([atom, "tokenize", "--model", model, "--text", text, "--ids-only"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"atom tokenize failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    return [int(x) for x in r.stdout.split()]


def atom_logits(atom, model, ids, out):
    cmd = [atom, "logits", "--model", model, "--ids", " ".join(map(str, ids)), "--out", out]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"atom logits failed ({r.returncode}): {r.stderr.strip()[-500:]}")
    a = np.load(out)
    return a, time.time() - t0


def compare(ref, got):
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    d = np.abs(got - ref)
    ref_max = float(np.abs(ref).max())
    lsm_r = ref - np.logaddexp.reduce(ref, axis=1, keepdims=True)
    lsm_g = got - np.logaddexp.reduce(got, axis=1, keepdims=True)
    am_r, am_g = ref.argmax(1), got.argmax(1)
    agree = am_r == am_g
    # where argmax disagrees, how close were the two top logits in the reference (a tie is no bug)
    gaps = []
    for i in np.nonzero(~agree)[0]:
        gaps.append(dict(pos=int(i), ref=int(am_r[i]), atom=int(am_g[i]),
                         ref_margin=float(ref[i, am_r[i]] - ref[i, am_g[i]])))
    return dict(
        n=int(ref.shape[0]),
        max_abs=float(d.max()),
        mean_abs=float(d.mean()),
        max_abs_pos=int(np.unravel_index(d.argmax(), d.shape)[0]),
        max_abs_ref=ref_max,
        rel_to_max=float(d.max() / ref_max),
        max_abs_logsoftmax=float(np.abs(lsm_g - lsm_r).max()),
        argmax_agree=int(agree.sum()),
        argmax_disagreements=gaps,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atom", default=None)
    ap.add_argument("--models", default=f"{DEFAULT_GGUF},{DEFAULT_HF}",
                    help="comma-separated model paths (.gguf or HF dir); both sides load the same path")
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--threshold", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", default=None, help="directory to keep the .npy files in")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    atom = find_atom(args.atom)
    if not atom:
        print("ref_logits: no atom binary (build/atom, build-ref/atom, $ATOM_BIN or --atom)", file=sys.stderr)
        return 2
    prompts = [("short", "The capital of France is"), ("wiki", wiki_paragraph(args.data)), ("chat", CHAT)]
    tmp = args.keep or tempfile.mkdtemp(prefix="ref_logits_")
    os.makedirs(tmp, exist_ok=True)

    from convert_gguf_to_hf import build_reference_tokenizer

    reftok = build_reference_tokenizer(DEFAULT_GGUF)

    report = dict(tool="tools/reference/ref_logits.py", date=datetime.datetime.now().isoformat(timespec="seconds"),
                  atom=atom, threshold=args.threshold, torch=torch.__version__,
                  transformers=__import__("transformers").__version__, results=[])
    worst = 0.0
    ids_by_prompt = {}
    for mpath in [m for m in args.models.split(",") if m]:
        t0 = time.time()
        model = load_model(mpath)
        print(f"== model {mpath} (transformers load {time.time() - t0:.1f}s)")
        for name, text in prompts:
            try:
                ids = atom_tokenize(atom, mpath, text)
            except RuntimeError as e:
                # an HF dir without tokenizer.json: use the GGUF's tokenizer (the same vocabulary)
                print(f"   [{name}] atom tokenize on {mpath} failed ({e}); using the GGUF's tokenizer")
                ids = atom_tokenize(atom, DEFAULT_GGUF, text)
            if name in ids_by_prompt and ids_by_prompt[name] != ids:
                print(f"   [{name}] WARNING: atom's ids differ between model paths")
            ids_by_prompt.setdefault(name, ids)
            ref_ids = reftok.encode(text, add_special_tokens=False).ids
            with torch.inference_mode():
                ref = model(torch.tensor([ids]), use_cache=False).logits[0].float().numpy()
            out = os.path.join(tmp, f"{os.path.basename(mpath.rstrip('/'))}.{name}.npy")
            try:
                got, secs = atom_logits(atom, mpath, ids, out)
            except RuntimeError as e:
                print(f"   [{name}] {e}", file=sys.stderr)
                return 2
            if got.shape != ref.shape:
                print(f"   [{name}] shape mismatch: atom {got.shape} vs transformers {ref.shape}", file=sys.stderr)
                return 2
            c = compare(ref, got)
            c.update(model=mpath, prompt=name, tokens=len(ids), ids_match_ref_tokenizer=(ids == ref_ids),
                     atom_seconds=secs)
            report["results"].append(c)
            worst = max(worst, c["max_abs"])
            print(f"   [{name:5s}] n={c['n']:3d} max_abs={c['max_abs']:.3e} (pos {c['max_abs_pos']}) "
                  f"mean_abs={c['mean_abs']:.2e} rel_to_max={c['rel_to_max']:.2e} (max|ref|={c['max_abs_ref']:.2f}) "
                  f"logsoftmax_max_abs={c['max_abs_logsoftmax']:.3e} argmax {c['argmax_agree']}/{c['n']} "
                  f"ids==ref_tok:{c['ids_match_ref_tokenizer']} atom {secs:.1f}s")
            for g in c["argmax_disagreements"]:
                print(f"           argmax differs at {g['pos']}: ref {g['ref']} atom {g['atom']} "
                      f"(ref margin {g['ref_margin']:.2e})")
        del model
    report["worst_max_abs"] = worst
    report["pass"] = worst <= args.threshold
    print(f"== worst max_abs {worst:.3e} vs threshold {args.threshold:g}: {'PASS' if report['pass'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
