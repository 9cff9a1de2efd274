#!/usr/bin/env python3
"""Convert a Llama-architecture GGUF into a Hugging Face checkpoint, independently of Atom's code.

transformers reads the GGUF itself (its own dequantizer for Q4_1/Q8_0/F32 blocks, its own undo of
llama.cpp's q/k row permutation, its own config mapping), so the safetensors written here are a
reference that shares no code with Atom's GGUF loader.

Writes:
  <out>/config.json + <out>/model.safetensors          (single file; default out: models/SmolLM2-135M-Instruct-hf)
  <sharded>/config.json + model-0000x-of-0000N.safetensors + model.safetensors.index.json
                                                          (default: models/SmolLM2-135M-Instruct-hf-sharded)
  optionally a tokenizer.json rebuilt from the GGUF vocabulary with SmolLM2's real pre-tokenizer
  (--tokenizer-out; never overwrites an existing file unless --force-tokenizer).

Other files already in the output directories (e.g. a tokenizer.json put there by someone else) are
left alone; only config.json / generation_config.json / model*.safetensors* are (re)written.

Usage:
  python3 tools/reference/convert_gguf_to_hf.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf]
      [--out DIR] [--sharded-out DIR] [--shard-size 100MB] [--tokenizer-out PATH] [--check]
"""
import argparse
import glob
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))


def build_reference_tokenizer(gguf_path, smollm_pre=True):
    """transformers' own tokenizer built from the GGUF vocabulary/merges (a `tokenizers.Tokenizer`).

    transformers 5.x maps tokenizer.ggml.model=gpt2 to GPT2Tokenizer and only overrides the split
    regex for the `pre` types it knows; "smollm" is not among them, so it falls back to plain
    ByteLevel(use_regex=True) -- GPT-2's regex, no individual-digit split. SmolLM2's real
    tokenizer.json (and llama.cpp's LLAMA_VOCAB_PRE_TYPE_SMOLLM, regexes "\\p{N}" then GPT-2's) splits
    every digit first. With smollm_pre=True we install that pre-tokenizer:
        Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)]
    The vocabulary has no multi-digit tokens and no "Ġ"+digit merges, so the two agree on most
    text; they can differ where a run of whitespace precedes a digit.
    """
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    d, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=name).backend_tokenizer
    if smollm_pre:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])
    return tok


def load_gguf_model(gguf_path):
    from transformers import AutoModelForCausalLM

    d, name = os.path.split(os.path.abspath(gguf_path))
    model = AutoModelForCausalLM.from_pretrained(
        d, gguf_file=name, dtype=torch.float32, attn_implementation="eager"
    )
    model.eval()
    # The GGUF load attaches a (non-serializable) GGUF "quantizer"; the weights themselves are
    # already dequantized fp32. Rebuild a plain model from the config and copy the weights over.
    if getattr(model, "hf_quantizer", None) is not None or getattr(model.config, "quantization_config", None):
        from transformers import AutoConfig

        cfg_dict = model.config.to_dict()
        cfg_dict.pop("quantization_config", None)
        cfg = type(model.config).from_dict(cfg_dict)
        cfg._attn_implementation = "eager"
        plain = type(model)(cfg).to(torch.float32)
        missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
        # lm_head is tied to embed_tokens; nothing else may be missing.
        missing = [k for k in missing if not (cfg.tie_word_embeddings and k == "lm_head.weight")]
        if missing or unexpected:
            raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
        plain.tie_weights()
        plain.eval()
        model = plain
    return model


def clear_weights(out_dir):
    """Remove stale weight files (a previous sharded/unsharded save) but nothing else."""
    for pat in ("model.safetensors", "model-*-of-*.safetensors", "model.safetensors.index.json",
                "pytorch_model*.bin*"):
        for f in glob.glob(os.path.join(out_dir, pat)):
            os.remove(f)


def save(model, out_dir, shard_size=None):
    os.makedirs(out_dir, exist_ok=True)
    clear_weights(out_dir)
    kw = dict(safe_serialization=True)
    if shard_size:
        kw["max_shard_size"] = shard_size
    try:
        model.save_pretrained(out_dir, **kw)
    except TypeError:  # newer transformers dropped safe_serialization (always safetensors)
        kw.pop("safe_serialization")
        model.save_pretrained(out_dir, **kw)
    files = sorted(os.listdir(out_dir))
    print(f"[convert] wrote {out_dir}: {files}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--out", default=os.path.join(REPO, "models", "SmolLM2-135M-Instruct-hf"))
    ap.add_argument("--sharded-out", default=os.path.join(REPO, "models", "SmolLM2-135M-Instruct-hf-sharded"),
                    help="'' to skip the sharded copy")
    ap.add_argument("--shard-size", default="100MB")
    ap.add_argument("--tokenizer-out", default="",
                    help="also write tokenizer.json rebuilt from the GGUF vocab (SmolLM2 pre-tokenizer) here")
    ap.add_argument("--force-tokenizer", action="store_true", help="overwrite --tokenizer-out if it exists")
    ap.add_argument("--check", action="store_true",
                    help="reload the saved checkpoints and compare every tensor and a forward pass")
    args = ap.parse_args()

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    t0 = time.time()
    model = load_gguf_model(args.gguf)
    cfg = model.config
    print(f"[convert] loaded {args.gguf} in {time.time() - t0:.1f}s: {cfg.model_type}, layers={cfg.num_hidden_layers} "
          f"hidden={cfg.hidden_size} heads={cfg.num_attention_heads}/{cfg.num_key_value_heads} "
          f"ffn={cfg.intermediate_size} vocab={cfg.vocab_size} tie={cfg.tie_word_embeddings} "
          f"rope_theta={getattr(cfg, 'rope_theta', None) or getattr(cfg, 'rope_parameters', None)} "
          f"eps={cfg.rms_norm_eps}")
    if not cfg.tie_word_embeddings:
        print("[convert] note: config says tie_word_embeddings=False", file=sys.stderr)

    # Do not let eager attention leak into config.json as a requirement for other readers.
    save(model, args.out)
    if args.sharded_out:
        save(model, args.sharded_out, args.shard_size)

    if args.tokenizer_out:
        if os.path.exists(args.tokenizer_out) and not args.force_tokenizer:
            print(f"[convert] {args.tokenizer_out} exists; not overwriting (use --force-tokenizer)")
        else:
            tok = build_reference_tokenizer(args.gguf)
            os.makedirs(os.path.dirname(os.path.abspath(args.tokenizer_out)), exist_ok=True)
            tok.save(args.tokenizer_out)
            print(f"[convert] wrote {args.tokenizer_out}")

    if args.check:
        from transformers import AutoModelForCausalLM

        ref = {k: v for k, v in model.state_dict().items()}
        ids = torch.tensor([[504, 3575, 282, 4649, 314]])
        with torch.inference_mode():
            base = model(ids).logits
        for d in [args.out] + ([args.sharded_out] if args.sharded_out else []):
            m2 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
            sd = m2.state_dict()
            worst = max(float((sd[k] - v).abs().max()) for k, v in ref.items())
            with torch.inference_mode():
                diff = float((m2(ids).logits - base).abs().max())
            print(f"[convert] check {d}: max tensor diff {worst:g}, max logit diff {diff:g}")
            if worst != 0 or diff != 0:
                print("[convert] CHECK FAILED", file=sys.stderr)
                return 1
    print(f"[convert] done in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
