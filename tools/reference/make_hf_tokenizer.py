#!/usr/bin/env python3
"""Builds the SmolLM2 Hugging Face tokenizer from the vocabulary embedded in the GGUF.

The reference is built with the HF `tokenizers` library only (independent of Atom):
  model:          BPE(vocab = tokenizer.ggml.tokens, merges = tokenizer.ggml.merges)
  pre_tokenizer:  Sequence[Digits(individual_digits=True),
                           ByteLevel(add_prefix_space=False, use_regex=True)]
                  (what SmolLM2's own tokenizer.json uses, and what llama.cpp's
                  tokenizer.ggml.pre = "smollm" means)
  decoder:        ByteLevel
  special tokens: token_type 3 (control) and 4 (user-defined)

Writes tokenizer.json and tokenizer_config.json (chat template from the GGUF, add_bos_token
false, bos/eos from tokenizer.ggml.bos/eos_token_id) into --out (default
models/SmolLM2-135M-Instruct-hf/, git-ignored).

Usage: python3 tools/reference/make_hf_tokenizer.py [--gguf PATH] [--out DIR]
"""
import argparse
import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_GGUF = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(REPO, "models", "SmolLM2-135M-Instruct-hf")


def read_gguf_tokenizer(path):
    """tokenizer.* metadata of a GGUF file as plain Python values."""
    import gguf  # the `gguf` package (llama.cpp's reader)

    r = gguf.GGUFReader(path)

    def get(key, default=None):
        f = r.fields.get(key)
        if f is None:
            return default
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            if f.types[1] == gguf.GGUFValueType.STRING:
                return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
            return [f.parts[i].tolist()[0] for i in f.data]
        if t == gguf.GGUFValueType.STRING:
            return bytes(f.parts[f.data[0]]).decode("utf-8")
        return f.parts[f.data[0]].tolist()[0]

    meta = {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre", "default"),
        "tokens": get("tokenizer.ggml.tokens"),
        "token_type": get("tokenizer.ggml.token_type"),
        "merges": get("tokenizer.ggml.merges"),
        "bos_id": get("tokenizer.ggml.bos_token_id"),
        "eos_id": get("tokenizer.ggml.eos_token_id"),
        "chat_template": get("tokenizer.chat_template", ""),
    }
    if meta["model"] != "gpt2":
        sys.exit(f"{path}: tokenizer.ggml.model is {meta['model']!r}, this script handles gpt2")
    if meta["pre"] != "smollm":
        sys.exit(f"{path}: tokenizer.ggml.pre is {meta['pre']!r}, this script builds 'smollm'")
    return meta


def build_hf_tokenizer(meta):
    """The reference `tokenizers.Tokenizer` for a SmolLM2-style GGUF vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    tokens = meta["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    # GGUF stores merges as "a b"; split after the first character like llama.cpp does.
    merges = []
    for m in meta["merges"]:
        sp = m.index(" ", 1)
        merges.append((m[:sp], m[sp + 1:]))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    types = meta["token_type"] or [1] * len(tokens)
    specials = [tokens[i] for i, t in enumerate(types) if t in (3, 4)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def tokenizer_config(meta):
    tokens = meta["tokens"]
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",  # load tokenizer.json exactly as written
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": tokens[meta["bos_id"]],
        "eos_token": tokens[meta["eos_id"]],
        "pad_token": tokens[meta["eos_id"]],
        "clean_up_tokenization_spaces": False,
        "model_max_length": 8192,
        "chat_template": meta["chat_template"],
    }


def save(tok, meta, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(meta), f, indent=2, ensure_ascii=False)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    meta = read_gguf_tokenizer(a.gguf)
    save(build_hf_tokenizer(meta), meta, a.out)
    print(f"wrote {a.out}/tokenizer.json and tokenizer_config.json "
          f"({len(meta['tokens'])} tokens, {len(meta['merges'])} merges)")


if __name__ == "__main__":
    main()
