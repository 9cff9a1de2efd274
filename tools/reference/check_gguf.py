#!/usr/bin/env python3
"""Cross-checks Atom's GGUF reader against the independent `gguf` PyPI package.

Compares, for one GGUF file:
  * version, every metadata key and value (arrays element by element),
  * every tensor's name, ggml type, dims, offset in the data section and byte size,
  * the config Atom derives (layers, hidden, heads, vocab, rope base, tied embeddings...),
  * dequantized fp32 values of a selection of tensors (or all with --all), bit for bit,
    using gguf.quants.dequantize as the reference.

Atom's side comes from the small tool tools/reference/gguf_dump (built with the project).
Usage: tools/reference/check_gguf.py [--model PATH] [--dump PATH/TO/gguf_dump] [--all]
Exit status 0 when everything matches.
"""
import argparse
import glob
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
# Q8_0 embedding, Q4_1 weights from first/middle/last layers, F32 norms.
DEFAULT_TENSORS = [
    "token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.ffn_down.weight",
    "blk.15.attn_v.weight", "blk.29.ffn_gate.weight", "blk.29.attn_output.weight",
    "blk.0.attn_norm.weight", "output_norm.weight",
]


def find_dump():
    pats = ["build*/gguf_dump", "build*/tools/reference/gguf_dump", "build*/tools/gguf_dump"]
    hits = [p for pat in pats for p in glob.glob(os.path.join(ROOT, pat)) if os.access(p, os.X_OK)]
    return max(hits, key=os.path.getmtime) if hits else None


def field_value(field):
    """A reader field as plain Python (str / int / float / bool / list)."""
    main = field.types[0]
    if main == GGUFValueType.ARRAY:
        et = field.types[-1]
        if et == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", errors="replace") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if main == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8", errors="replace")
    return field.parts[field.data[0]].tolist()[0]


def same_value(a, b):
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--dump", default=None, help="path to the gguf_dump binary")
    ap.add_argument("--all", action="store_true", help="dequantize and compare every tensor")
    args = ap.parse_args()

    dump = args.dump or find_dump()
    if not dump:
        sys.exit("check_gguf: gguf_dump not found (build it: see tools/reference/gguf_dump.cpp)")
    if not os.path.exists(args.model):
        sys.exit(f"check_gguf: model not found: {args.model}")
    errors = []

    info = json.loads(subprocess.run([dump, args.model, "info"], check=True, capture_output=True).stdout)
    reader = GGUFReader(args.model)

    # --- header and metadata ---
    ref_version = field_value(reader.fields["GGUF.version"])
    if info["version"] != ref_version:
        errors.append(f"version: atom {info['version']} vs gguf {ref_version}")
    ref_md = {k: field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}
    if set(ref_md) != set(info["metadata"]):
        errors.append(f"metadata keys differ: {sorted(set(ref_md) ^ set(info['metadata']))}")
    for k, v in ref_md.items():
        if k in info["metadata"] and not same_value(info["metadata"][k], v):
            errors.append(f"metadata '{k}' differs")

    # --- tensor infos ---
    ours = {t["name"]: t for t in info["tensors"]}
    if len(ours) != len(reader.tensors):
        errors.append(f"tensor count: atom {len(ours)} vs gguf {len(reader.tensors)}")
    for t in reader.tensors:
        o = ours.get(t.name)
        if o is None:
            errors.append(f"tensor {t.name} missing in atom")
            continue
        want = dict(type=int(t.tensor_type), dims=[int(d) for d in t.shape],
                    offset=int(t.data_offset - reader.data_offset), nbytes=int(t.n_bytes))
        got = {k: o[k] for k in want}
        if got != want:
            errors.append(f"tensor {t.name}: atom {got} vs gguf {want}")
        if o["type_name"] != t.tensor_type.name:
            errors.append(f"tensor {t.name}: type name {o['type_name']} vs {t.tensor_type.name}")

    # --- config ---
    md, arch = ref_md, ref_md["general.architecture"]
    heads = md[f"{arch}.attention.head_count"]
    want_cfg = {
        "num_layers": md[f"{arch}.block_count"],
        "hidden_size": md[f"{arch}.embedding_length"],
        "intermediate_size": md[f"{arch}.feed_forward_length"],
        "num_heads": heads,
        "num_kv_heads": md.get(f"{arch}.attention.head_count_kv", heads),
        "head_dim": md.get(f"{arch}.attention.key_length", md[f"{arch}.embedding_length"] // heads),
        "vocab_size": md.get(f"{arch}.vocab_size", len(md.get("tokenizer.ggml.tokens", []))),
        "max_position_embeddings": md[f"{arch}.context_length"],
        "rope_theta": md.get(f"{arch}.rope.freq_base", 10000.0),
        "tie_word_embeddings": "output.weight" not in {t.name for t in reader.tensors},
        "bos_token_id": md.get("tokenizer.ggml.bos_token_id", -1),
        "eos_token_id": md.get("tokenizer.ggml.eos_token_id", -1),
    }
    for k, v in want_cfg.items():
        if not same_value(info["config"][k], v):
            errors.append(f"config {k}: atom {info['config'][k]} vs gguf {v}")

    # --- dequantized values ---
    by_name = {t.name: t for t in reader.tensors}
    supported = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1"}
    names = [t.name for t in reader.tensors] if args.all else [n for n in DEFAULT_TENSORS if n in by_name]
    skipped = [n for n in names if by_name[n].tensor_type.name not in supported]
    names = [n for n in names if n not in skipped]
    for n in skipped:  # Atom must refuse these with a clean error naming the type
        r = subprocess.run([dump, args.model, "dump", n, os.devnull], capture_output=True, text=True)
        tname = by_name[n].tensor_type.name
        if r.returncode != 1 or tname not in r.stderr or n not in r.stderr:
            errors.append(f"{n} ({tname}): expected a clean 'unsupported type' error, got rc {r.returncode}: {r.stderr.strip()}")
        else:
            print(f"  {n:32s} {tname:5s} refused as expected: {r.stderr.strip()}")
    n_values = 0
    with tempfile.TemporaryDirectory() as tmp:
        # one gguf_dump call per batch keeps memory and temp space bounded
        for i in range(0, len(names), 16):
            batch = names[i:i + 16]
            cmd = [dump, args.model, "dump"]
            for j, n in enumerate(batch):
                cmd += [n, os.path.join(tmp, f"{j}.f32")]
            subprocess.run(cmd, check=True)
            for j, n in enumerate(batch):
                t = by_name[n]
                ref = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
                got = np.fromfile(os.path.join(tmp, f"{j}.f32"), dtype="<f4")
                os.remove(os.path.join(tmp, f"{j}.f32"))
                if got.shape != ref.shape:
                    errors.append(f"{n}: atom {got.shape[0]} values vs gguf {ref.shape[0]}")
                    continue
                n_values += got.size
                if not np.array_equal(got.view(np.uint32), ref.view(np.uint32)):
                    bad = np.flatnonzero(got.view(np.uint32) != ref.view(np.uint32))
                    diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
                    errors.append(f"{n} ({t.tensor_type.name}): {bad.size} of {got.size} values differ "
                                  f"(first at {bad[0]}: {got[bad[0]]} vs {ref[bad[0]]}), max |diff| {diff:g}")
                else:
                    print(f"  {n:32s} {t.tensor_type.name:5s} {got.size:>10d} values bit-identical")

    print(f"check_gguf: {args.model}")
    print(f"  {len(ref_md)} metadata keys, {len(reader.tensors)} tensor infos, config, and "
          f"{len(names)} tensors ({n_values} values) compared against gguf {gguf_version()}")
    if errors:
        for e in errors[:50]:
            print("  MISMATCH:", e)
        print(f"check_gguf: FAILED ({len(errors)} mismatches)")
        return 1
    print("check_gguf: OK (all equal, dequantized values bit-identical)")
    return 0


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:  # noqa: BLE001 - only for the report line
        return "?"


if __name__ == "__main__":
    sys.exit(main())
