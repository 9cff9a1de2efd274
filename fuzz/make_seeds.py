#!/usr/bin/env python3
"""Writes small valid seed files for the fuzzers: make_seeds.py OUTDIR.

OUTDIR/safetensors/*.safetensors are written by hand from the format spec (u64 header length,
JSON header padded with spaces to 8 bytes, data); OUTDIR/gguf/*.gguf by the `gguf` PyPI
package's GGUFWriter (an independent writer) with F32/F16/BF16/Q8_0/Q4_0/Q4_1 tensors, one Q4_K
tensor (unsupported by Atom: must raise a clean error) and every metadata value type.
"""
import json
import os
import struct
import sys

import numpy as np

rng = np.random.default_rng(1234)


def safetensors_bytes(tensors, metadata=None):
    """tensors: list of (name, dtype_str, shape, raw_bytes)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def write_safetensors_seeds(out):
    os.makedirs(out, exist_ok=True)
    dts = {"F32": np.float32, "F16": np.float16, "I8": np.int8, "U8": np.uint8, "I32": np.int32, "I64": np.int64}
    ts = []
    for dt, npdt in dts.items():
        a = (rng.standard_normal((2, 3)) * 50).astype(npdt)
        ts.append((f"w.{dt}", dt, a.shape, a.tobytes()))
    bf = (rng.standard_normal(4).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    ts.append(("w.BF16", "BF16", (4,), bf.tobytes()))
    seeds = {
        "all_dtypes": safetensors_bytes(ts, {"format": "pt"}),
        "one_f32": safetensors_bytes([ts[0]]),
        "empty_header": safetensors_bytes([]),
        "zero_size": safetensors_bytes([("z", "F32", (0, 4), b""), ts[1]]),
        "scalar": safetensors_bytes([("s", "F32", (), np.float32(1.5).tobytes())], {"a": "b"}),
    }
    for name, b in seeds.items():
        with open(os.path.join(out, name + ".safetensors"), "wb") as f:
            f.write(b)
    return len(seeds)


def write_gguf_seeds(out):
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import quantize

    os.makedirs(out, exist_ok=True)

    def llama(path, with_tensors=True, alignment=None):
        w = gguf.GGUFWriter(path, "llama")
        if alignment:
            w.add_custom_alignment(alignment)
        w.add_block_count(2)
        w.add_context_length(256)
        w.add_embedding_length(64)
        w.add_feed_forward_length(128)
        w.add_head_count(4)
        w.add_head_count_kv(2)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_rope_freq_base(10000.0)
        w.add_tokenizer_model("gpt2")
        w.add_token_list(["<unk>", "<s>", "</s>", "a", "b", "ab"])
        w.add_token_types([2, 3, 3, 1, 1, 1])
        w.add_token_merges(["a b"])
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        # every scalar type
        w.add_uint8("t.u8", 200); w.add_int8("t.i8", -5); w.add_uint16("t.u16", 60000)
        w.add_int16("t.i16", -300); w.add_uint64("t.u64", 1 << 40); w.add_int64("t.i64", -(1 << 40))
        w.add_float64("t.f64", 0.125); w.add_bool("t.bool", True)
        w.add_array("t.f32s", [0.5, 1.5])
        if with_tensors:
            x = rng.standard_normal((6, 64)).astype(np.float32)
            w.add_tensor("token_embd.weight", quantize(x, T.Q8_0), raw_dtype=T.Q8_0)
            w.add_tensor("blk.0.attn_q.weight", quantize(x[:2], T.Q4_0), raw_dtype=T.Q4_0)
            w.add_tensor("blk.0.attn_k.weight", quantize(x[:2], T.Q4_1), raw_dtype=T.Q4_1)
            w.add_tensor("blk.0.ffn_up.weight", x[:2].astype(np.float16))
            w.add_tensor("output_norm.weight", x[0])
            bf = (x[1].view(np.uint32) >> 16).astype(np.uint16)
            w.add_tensor("blk.0.attn_norm.weight", bf.view(np.uint8), raw_dtype=T.BF16)
            q4k = rng.integers(0, 256, size=(1, 144), dtype=np.uint8)  # one Q4_K block: unsupported
            w.add_tensor("blk.1.ffn_down.weight", q4k, raw_dtype=T.Q4_K)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()

    llama(os.path.join(out, "llama_small.gguf"))
    llama(os.path.join(out, "llama_align64.gguf"), alignment=64)
    llama(os.path.join(out, "metadata_only.gguf"), with_tensors=False)
    return 3


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py OUTDIR")
    out = sys.argv[1]
    n1 = write_safetensors_seeds(os.path.join(out, "safetensors"))
    n2 = write_gguf_seeds(os.path.join(out, "gguf"))
    print(f"make_seeds: {n1} safetensors and {n2} gguf seeds in {out}")


if __name__ == "__main__":
    main()
