#!/usr/bin/env python3
"""Independent check of Atom's tokenizer against Hugging Face.

Token ids: `atom tokenize` (loading the .gguf, and loading the HF tokenizer.json directory)
versus the HF `tokenizers` library (the reference built by make_hf_tokenizer.py from the GGUF's
vocab/merges with SmolLM2's pre-tokenizer), on
  (a) the whole wikitext-2 test file, and
  (b) a torture sample (whitespace runs, tabs/newlines, emoji with ZWJ, CJK, combining marks,
      Arabic, code, numbers, inline special tokens, leading spaces, odd Unicode spaces),
  (c) 20,000 random Unicode characters (--seed),
each with special tokens parsed and with --no-special. Also reports whether transformers' own
GGUF tokenizer conversion (AutoTokenizer.from_pretrained(dir, gguf_file=...)) agrees.

Chat templates: `atom tokenize --messages ... --prompt-only` versus transformers'
apply_chat_template (Jinja) with SmolLM2's real template (from the GGUF) and the Llama-3 and
Llama-2 chat templates (as published in those models' tokenizer_config.json).

Usage: python3 tools/reference/check_tokenizer.py [--atom build/atom] [--gguf PATH]
           [--hf-dir DIR] [--wikitext FILE]
Exit status 0 when everything matches.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_tokenizer as mk  # noqa: E402

REPO = mk.REPO

TORTURE = "".join([
    "  leading spaces and trailing spaces   \n",
    "whitespace   runs\t\ttabs \t mixed\n\n\nnewlines\r\nCRLF\r\n \n  \n",
    "numbers 1234567 3.14 -0.5 1,000,000 2024-01-01 v1.2.3 x  12 a   345 ١٢٣ ½ ² Ⅻ 0x1F\n",
    "emoji 👍🏽 👨‍👩‍👧‍👦 🇺🇸 ❤️ 🏳️‍🌈 😀😃😄\n",
    "CJK 日本語のテキスト、中文字符。한국어 텍스트\n",
    "accents café naïve résumé Ångström e\u0301 A\u030a n\u0303 Zalgo: Z\u0351\u0352o\u0310\n",
    "Arabic مرحبا بالعالم Hebrew שלום Devanagari नमस्ते Thai สวัสดี Greek Ελληνικά Кириллица\n",
    "code:\ndef f(x):\n    return x**2 + 1  # comment\n\tif (a != b && c <= d) { x->y[i] = 0; }\n",
    "contractions don't I'll we've they're it's DON'T WE'RE\n",
    "specials <|im_start|>user\nhi<|im_end|>\n<|endoftext|>text<|im_end|>text < |im_start|> <|im_start|\n",
    "odd spaces a\u00a0b c\u3000d e\u2028f g\u0085h i\u180ej k\u200bl m\u000bn o\u000cp q\u001cr\n",
    "repeats " + "a" * 200 + " " + "!" * 30 + " " + "-" * 40 + " " + " " * 50 + "end\n",
    "url https://example.com/path?q=1&r=2#frag email@example.org\n",
    "   ",
])



def random_unicode(seed, n_chars):
    """Random text mixing ASCII, whitespace, Latin-1, combining marks, Cyrillic, Arabic, CJK,
    Hangul, emoji, punctuation, flags and all supplementary planes (reproducible by seed)."""
    import random
    rng = random.Random(seed)
    ranges = [(0x20, 0x7E), (0x09, 0x0D), (0xA0, 0xFF), (0x300, 0x36F), (0x400, 0x4FF),
              (0x600, 0x6FF), (0x4E00, 0x4FFF), (0xAC00, 0xAC80), (0x1F300, 0x1F64F),
              (0x2000, 0x206F), (0x30, 0x39), (0x3000, 0x303F), (0x1F1E6, 0x1F1FF),
              (0x10000, 0x10FFFF)]
    out = []
    for _ in range(n_chars):
        lo, hi = rng.choice(ranges)
        cp = rng.randint(lo, hi)
        out.append(chr(cp if not 0xD800 <= cp <= 0xDFFF else 0x78))
    return "".join(out)


LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}")

LLAMA2_TEMPLATE = (
    r"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    r"{% set system_message = messages[0]['content'] %}{% else %}"
    r"{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    r"{% for message in loop_messages %}"
    r"{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    r"{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    r"{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}"
    r"{% else %}{% set content = message['content'] %}{% endif %}"
    r"{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    r"{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    r"{% endif %}{% endfor %}")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello!"}],
    [{"role": "system", "content": "You are terse."},
     {"role": "user", "content": "What is 2+2?"}],
    [{"role": "user", "content": "Hi"},
     {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "  Tell me a joke.\n  With spaces  \n"}],
    [{"role": "system", "content": "Système: réponds en français 🇫🇷"},
     {"role": "user", "content": "日本語で\t答えて"},
     {"role": "assistant", "content": "はい。"},
     {"role": "user", "content": "<|im_start|> literal?"}],
]

failures = 0


def report(name, ok, detail=""):
    global failures
    failures += 0 if ok else 1
    print(f"  {'OK  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail else ''}")


def atom_run(atom, args, capture=True):
    r = subprocess.run([atom] + args, capture_output=capture)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join([atom] + args)} failed ({r.returncode}):\n"
                           + r.stderr.decode("utf-8", "replace"))
    return r.stdout


def atom_ids(atom, model, text, no_special, tmp, bos=False):
    path = os.path.join(tmp, "input.txt")
    with open(path, "wb") as f:
        f.write(text.encode("utf-8"))
    args = ["tokenize", "--model", model, "--file", path, "--ids-only"]
    args.append("--add-bos" if bos else "--no-bos")
    if no_special:
        args.append("--no-special")
    return [int(x) for x in atom_run(atom, args).split()]


def first_mismatch(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b)) if len(a) != len(b) else -1


def describe(ref, got, tok):
    i = first_mismatch(ref, got)
    if i < 0:
        return ""
    show = lambda ids: [tok.id_to_token(t) for t in ids]  # noqa: E731
    return (f"first mismatch at token {i}: reference {ref[max(0, i - 3):i + 4]} "
            f"{show(ref[max(0, i - 3):i + 4])} vs {got[max(0, i - 3):i + 4]} "
            f"{show(got[max(0, i - 3):i + 4])}")


def compare_ids(name, ref, got, tok):
    ok = ref == got
    detail = f"reference {len(ref)} tokens, atom {len(got)} tokens"
    if not ok:
        detail += "; " + describe(ref, got, tok)
    report(name, ok, detail)


def check_ids(a, ref_tok, texts, tmp):
    print("== token ids: atom vs HF tokenizers reference ==")
    for model_name, model in [("gguf", a.gguf), ("hf-dir", a.hf_dir)]:
        for text_name, text in texts:
            for no_special in (False, True):
                ref_tok.encode_special_tokens = no_special
                ref = ref_tok.encode(text, add_special_tokens=False).ids
                got = atom_ids(a.atom, model, text, no_special, tmp)
                mode = "--no-special" if no_special else "specials parsed"
                compare_ids(f"{model_name:6} {text_name:9} {mode}", ref, got, ref_tok)
    ref_tok.encode_special_tokens = False
    # Decoding the reference ids gives the text back (a sanity check of the reference itself;
    # not for the random text: SmolLM2 has no token for some bytes, e.g. F1, which BPE drops).
    for text_name, text in texts[:2]:
        ids = ref_tok.encode(text, add_special_tokens=False).ids
        report(f"reference round-trip {text_name}", ref_tok.decode(ids, skip_special_tokens=False) == text)


def check_variants(a, ref_tok, meta, texts, tmp):
    """Other tokenizer.json pipelines, built with the HF library and saved; atom loads the
    saved file. Llama-3 style (Split regex + ByteLevel without regex + ignore_merges + BOS
    post-processor) and GPT-2 style (ByteLevel with add_prefix_space) reuse the SmolLM2 vocab;
    the Llama-2 / SentencePiece style (Prepend/Replace normalizer or Metaspace, byte fallback,
    <unk>, ▁ decoder) uses a small model trained here with the sentencepiece package and
    converted the way transformers' LlamaConverter does."""
    print("== other tokenizer.json pipelines: atom vs HF tokenizers ==")
    from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                            pre_tokenizers, processors)
    llama3_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?"
                    r"[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    vocab = {t: i for i, t in enumerate(meta["tokens"])}
    merges = [(m[:m.index(" ", 1)], m[m.index(" ", 1) + 1:]) for m in meta["merges"]]
    specials = [AddedToken(meta["tokens"][i], special=True, normalized=False)
                for i, t in enumerate(meta["token_type"]) if t in (3, 4)]

    def save(name, tok, cfg=None):
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        if cfg is not None:
            with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
                json.dump(cfg, f)
        return d

    variants = []
    t = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    t.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(llama3_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens(specials)
    t.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|im_start|> $A", special_tokens=[("<|im_start|>", 1)])])
    variants.append(("llama3-style", t, save("llama3-style", t), texts))

    t = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens(specials)
    variants.append(("gpt2-style", t, save("gpt2-style", t), texts))

    try:
        import sentencepiece as spm
        from transformers.convert_slow_tokenizer import generate_merges
    except ImportError as e:
        print(f"  (skipping the SentencePiece-style variant: {e})")
        spm = None
    if spm is not None:
        import random
        rng = random.Random(a.seed)
        syll = ["ka", "to", "ri", "mun", "el", "sa", "qu", "é", "ün", "dra", "日", "本", "xo",
                "ph", "a", "i", "th", "ng", "ße", "ø", "Th", "A"]
        train = os.path.join(tmp, "spm_train.txt")
        with open(train, "w", encoding="utf-8") as f:
            for _ in range(4000):
                f.write(" ".join("".join(rng.choice(syll) for _ in range(rng.randint(1, 4)))
                                 for _ in range(rng.randint(5, 15))) + "\n")
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(
            input=train, model_prefix=prefix, vocab_size=400, model_type="bpe",
            character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
            remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            num_threads=1, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
        pieces = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
        scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(sp.get_piece_size())}
        sp_merges = generate_merges(pieces, scores)
        controls = [AddedToken(sp.id_to_piece(i), special=True, normalized=False)
                    for i in range(sp.get_piece_size()) if sp.is_control(i) or sp.is_unknown(i)]
        spm_texts = [(n, x) for n, x in texts if n != "wikitext2"] + [
            ("spm-like", " ".join("".join(rng.choice(syll) for _ in range(rng.randint(1, 4)))
                                  for _ in range(3000)) + " <s> x </s>  end ")]
        for legacy in (True, False):
            t = Tokenizer(models.BPE(vocab=pieces, merges=sp_merges, unk_token="<unk>",
                                     fuse_unk=True, byte_fallback=True))
            if legacy:
                t.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                                     normalizers.Replace(" ", "▁")])
            else:
                t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                           split=False)
            t.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                           decoders.Fuse(), decoders.Strip(" ", 1, 0)])
            t.add_special_tokens(controls)
            name = "spm-legacy" if legacy else "spm-metaspace"
            variants.append((name, t, save(name, t), spm_texts))
        # Information only: the converted BPE vs sentencepiece itself (which does not parse
        # <s> in text, so compare on text without control tokens).
        for n, x in spm_texts:
            x = x.replace("<s>", "").replace("</s>", "")
            for vn, vt, _, _ in variants[-2:]:
                same = sp.encode(x) == vt.encode(x, add_special_tokens=False).ids
                print(f"  (info: sentencepiece itself and its HF conversion {vn} "
                      f"{'agree' if same else 'DIFFER'} on {n})")

    if spm is not None:
        # The same model as GGUF "llama" metadata and as tokenizer.model: atom's own SPM
        # algorithm and its libsentencepiece wrapper vs the sentencepiece package.
        import gguf
        import shutil
        n = sp.get_piece_size()
        w = gguf.GGUFWriter(os.path.join(tmp, "spm.gguf"), "llama")
        w.add_tokenizer_model("llama")
        w.add_token_list([sp.id_to_piece(i) for i in range(n)])
        w.add_token_scores([sp.get_score(i) for i in range(n)])
        w.add_token_types([2 if sp.is_unknown(i) else 3 if sp.is_control(i) else
                           5 if sp.is_unused(i) else 6 if sp.is_byte(i) else 1 for i in range(n)])
        w.add_bos_token_id(sp.bos_id())
        w.add_eos_token_id(sp.eos_id())
        w.add_unk_token_id(sp.unk_id())
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        model_dir = os.path.join(tmp, "spm-model")
        os.makedirs(model_dir, exist_ok=True)
        shutil.copy(prefix + ".model", os.path.join(model_dir, "tokenizer.model"))
        print("  (spm-gguf / spm-model: reference = the sentencepiece package itself)")
        for name, model in [("spm-gguf", os.path.join(tmp, "spm.gguf")), ("spm-model", model_dir)]:
            for text_name, text in spm_texts:
                ref = sp.encode(text)
                got = atom_ids(a.atom, model, text, True, tmp)
                compare_ids(f"{name:13} {text_name:9}", ref, got, variants[-1][1])

    for name, tok, d, vtexts in variants:
        for text_name, text in vtexts:
            ref = tok.encode(text, add_special_tokens=False).ids
            got = atom_ids(a.atom, d, text, False, tmp)
            compare_ids(f"{name:13} {text_name:9}", ref, got, tok)
            if name == "llama3-style" and text_name == "torture":
                ref = tok.encode(text, add_special_tokens=True).ids
                got = atom_ids(a.atom, d, text, False, tmp, bos=True)
                compare_ids(f"{name:13} {text_name:9} +BOS", ref, got, tok)
            if name.startswith("spm") and text_name != "random":
                ids = tok.encode(text, add_special_tokens=False).ids
                got = atom_run(a.atom, ["tokenize", "--model", d, "--file",
                                        os.path.join(tmp, "input.txt"), "--ids-only",
                                        "--no-bos", "--decode"]).decode("utf-8").split("\n", 1)[1]
                ref_text = tok.decode(ids, skip_special_tokens=False)
                report(f"{name:13} {text_name:9} decode", got[:-1] == ref_text,
                       "" if got[:-1] == ref_text else f"{got[:80]!r} vs {ref_text[:80]!r}")


def check_transformers_gguf(a, ref_tok, texts):
    print("== transformers' own GGUF tokenizer conversion vs the reference ==")
    try:
        from transformers import AutoTokenizer
        t = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(a.gguf)),
                                          gguf_file=os.path.basename(a.gguf))
    except Exception as e:  # informative only: not a failure of Atom
        print(f"  (could not load: {e})")
        return
    backend = json.loads(t.backend_tokenizer.to_str())
    print(f"  its pre_tokenizer: {json.dumps(backend.get('pre_tokenizer'))}")
    for text_name, text in texts:
        ref = ref_tok.encode(text, add_special_tokens=False).ids
        got = t(text, add_special_tokens=False)["input_ids"]
        same = ref == got
        print(f"  {'agrees   ' if same else 'DISAGREES'} on {text_name}: reference {len(ref)} "
              f"tokens, transformers-gguf {len(got)} tokens"
              + ("" if same else "; " + describe(ref, got, ref_tok)))
    print("  (informative: the GGUF says tokenizer.ggml.pre = 'smollm', i.e. digits are split "
          "individually before the ByteLevel regex, as in SmolLM2's own tokenizer.json; a "
          "conversion without the Digits step differs e.g. on 'x  12' (two spaces before a "
          "number), where it yields 'Ġ','Ġ' instead of 'ĠĠ'.)")


def check_chat(a, meta, tmp):
    print("== chat templates: atom --prompt-only vs transformers apply_chat_template ==")
    from tokenizers import AddedToken, Tokenizer
    from transformers import AutoTokenizer

    def make_dir(name, template, bos, eos):
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        tok = Tokenizer.from_file(os.path.join(a.hf_dir, "tokenizer.json"))
        extra = [s for s in ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                             "<|eot_id|>", "<s>", "</s>"] if tok.token_to_id(s) is None]
        tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in extra])
        tok.save(os.path.join(d, "tokenizer.json"))
        cfg = mk.tokenizer_config(meta)
        cfg.update({"chat_template": template, "bos_token": bos, "eos_token": eos,
                    "pad_token": eos})
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, ensure_ascii=False)
        return d

    setups = [
        ("smollm2-gguf", a.gguf, a.hf_dir),
        ("smollm2-hf", a.hf_dir, a.hf_dir),
        ("llama3", None, make_dir("llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>", "<|eot_id|>")),
        ("llama2", None, make_dir("llama2", LLAMA2_TEMPLATE, "<s>", "</s>")),
    ]
    for name, atom_model, hf_dir in setups:
        atom_model = atom_model or hf_dir
        hf = AutoTokenizer.from_pretrained(hf_dir)
        for ci, conv in enumerate(CONVERSATIONS):
            for gen in (True, False):
                ref = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
                mpath = os.path.join(tmp, "messages.json")
                with open(mpath, "w", encoding="utf-8") as f:
                    json.dump(conv, f, ensure_ascii=False)
                args = ["tokenize", "--model", atom_model, "--messages", mpath, "--prompt-only"]
                if not gen:
                    args.append("--no-gen-prompt")
                got = atom_run(a.atom, args).decode("utf-8")
                label = f"{name:12} conversation {ci} gen_prompt={int(gen)}"
                report(label, got == ref, "" if got == ref else f"\n    ref:  {ref!r}\n    atom: {got!r}")
                if got == ref and gen:  # the ids of the prompt match too
                    ids = [int(x) for x in atom_run(a.atom, ["tokenize", "--model", atom_model,
                                                             "--messages", mpath, "--ids-only"]).split()]
                    ref_ids = hf(ref, add_special_tokens=False)["input_ids"]
                    if ids != ref_ids:
                        report(label + " ids", False, f"{ids} vs {ref_ids}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--atom", default=os.path.join(REPO, "build", "atom"))
    ap.add_argument("--gguf", default=mk.DEFAULT_GGUF)
    ap.add_argument("--hf-dir", default=mk.DEFAULT_OUT)
    ap.add_argument("--wikitext", default=os.path.join(REPO, "..", "shared", "data",
                                                       "wikitext2-test.txt"))
    ap.add_argument("--seed", type=int, default=20241125, help="seed of the random text")
    a = ap.parse_args()
    for p in (a.atom, a.gguf, a.wikitext):
        if not os.path.exists(p):
            sys.exit(f"missing {p}")

    meta = mk.read_gguf_tokenizer(a.gguf)
    ref_tok = mk.build_hf_tokenizer(meta)
    if not os.path.exists(os.path.join(a.hf_dir, "tokenizer.json")):
        mk.save(ref_tok, meta, a.hf_dir)
        print(f"created {a.hf_dir} with make_hf_tokenizer.py")
    with open(a.wikitext, encoding="utf-8") as f:
        wikitext = f.read()
    rnd = random_unicode(a.seed, 20000)
    texts = [("wikitext2", wikitext), ("torture", TORTURE), ("random", rnd)]
    print(f"wikitext2: {len(wikitext.encode())} bytes; torture: {len(TORTURE.encode())} bytes; "
          f"random (seed {a.seed}): {len(rnd.encode())} bytes")

    with tempfile.TemporaryDirectory() as tmp:
        check_ids(a, ref_tok, texts, tmp)
        check_variants(a, ref_tok, meta, texts, tmp)
        check_transformers_gguf(a, ref_tok, texts)
        check_chat(a, meta, tmp)
    print("ALL MATCH" if failures == 0 else f"{failures} FAILURE(S)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
