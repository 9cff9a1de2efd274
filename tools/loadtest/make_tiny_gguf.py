#!/usr/bin/env python3
"""Write a tiny random Llama GGUF that carries SmolLM2's real tokenizer (vocab, merges, chat template).

For engine and server load tests where the model's quality does not matter but its tokenizer, chat
template and file format are the real ones: the weights are seeded random fp16, the shapes small
(default hidden 256 = 4 heads of 64, 2 KV heads, FFN 512, 2 layers), so the file is ~29 MB and
travels where the 93 MB SmolLM2 GGUF does not. Hidden 256 leaves 128 channels beside Atom's 128 outliers:
the GPU Atom GEMM needs at least one whole 128-group (hidden 128 with 32 outliers is refused there). Needs the `gguf` package (PyPI).

Usage: python3 tools/loadtest/make_tiny_gguf.py [--src models/SmolLM2-135M-Instruct.Q4_1.gguf]
           [--out models/tiny-smollm-tokenizer.gguf] [--hidden 256] [--layers 2] [--ffn 512] [--seed 0]
"""
import argparse

import gguf
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--out", default="models/tiny-smollm-tokenizer.gguf")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    assert a.hidden % a.head_dim == 0
    heads = a.hidden // a.head_dim
    src = gguf.GGUFReader(a.src)
    arch = "llama"
    w = gguf.GGUFWriter(a.out, arch)
    # tokenizer and chat template: copied field by field from the source
    vocab = 0
    for name, f in src.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vt = f.types[0]
        if vt == gguf.GGUFValueType.ARRAY:
            et = f.types[1]
            vals = [f.contents(i) for i in range(len(f.data))] if hasattr(f, "contents") else None
            if vals is None:
                vals = [bytes(f.parts[i]).decode("utf-8") if et == gguf.GGUFValueType.STRING else f.parts[i][0]
                        for i in f.data]
            if name == "tokenizer.ggml.tokens":
                vocab = len(vals)
            w.add_key_value(name, vals, vt, sub_type=et)
        else:
            w.add_key_value(name, f.contents(), vt)
    assert vocab > 0, "no tokenizer.ggml.tokens in the source"
    w.add_context_length(2048)
    w.add_embedding_length(a.hidden)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_freq_base(100000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(a.head_dim)
    rng = np.random.default_rng(a.seed)

    def t(name, *shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        w.add_tensor(name, (rng.standard_normal(shape) * s).astype(np.float16))

    t("token_embd.weight", vocab, a.hidden, scale=1.0)
    w.add_tensor("output_norm.weight", np.ones(a.hidden, np.float32))
    kv = a.kv_heads * a.head_dim
    for l in range(a.layers):
        p = f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", (1 + 0.1 * rng.standard_normal(a.hidden)).astype(np.float32))
        w.add_tensor(p + "ffn_norm.weight", (1 + 0.1 * rng.standard_normal(a.hidden)).astype(np.float32))
        t(p + "attn_q.weight", a.hidden, a.hidden)
        t(p + "attn_k.weight", kv, a.hidden)
        t(p + "attn_v.weight", kv, a.hidden)
        t(p + "attn_output.weight", a.hidden, a.hidden)
        t(p + "ffn_gate.weight", a.ffn, a.hidden)
        t(p + "ffn_up.weight", a.ffn, a.hidden)
        t(p + "ffn_down.weight", a.hidden, a.ffn)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {a.out}: vocab {vocab}, hidden {a.hidden}, {a.layers} layers, {heads} heads of {a.head_dim}")


if __name__ == "__main__":
    main()
