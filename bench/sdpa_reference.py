#!/usr/bin/env python3
"""Outside reference for bench_attention's decode table (issue 5): PyTorch's scaled_dot_product_attention
(fp16, contiguous K/V, one query token per sequence) on the same shapes, timed the same way.

Batch {1,16,64,256} x context {512,2048,8192,32768} for Llama-2-7B (32 heads, MHA, d 128) and Llama-3-8B
(32 query / 8 KV heads, d 128). Median of 15 event-timed batches; K/V copies rotated so the working set
exceeds L2; random data. Bytes moved = K + V + q + out; GB/s on them. Combinations over 80% of free memory
are skipped. JSON with --json. Runs on the GPU machine's PyTorch: python3 bench/sdpa_reference.py --json F
(--device cpu --quick checks the script itself).
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F

MODELS = [("Llama-2-7B", 32, 32, 128), ("Llama-3-8B", 32, 8, 128)]


def time_ms(fn, device):
    for _ in range(3):
        fn(0)
    if device != "cuda":
        import time
        t = time.perf_counter()
        for i in range(3):
            fn(i)
        return (time.perf_counter() - t) / 3 * 1e3
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for i in range(3):
        fn(i)
    b.record()
    b.synchronize()
    est = max(1e-4, a.elapsed_time(b) / 3)
    batch = int(min(200, max(1, 2.0 / est)))
    times, it = [], 0
    for _ in range(15):
        a.record()
        for _ in range(batch):
            fn(it)
            it += 1
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / batch)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    dev = a.device
    bs = [1, 2] if a.quick else [1, 16, 64, 256]
    ctxs = [64, 128] if a.quick else [512, 2048, 8192, 32768]
    l2 = torch.cuda.get_device_properties(0).L2_cache_size if dev == "cuda" else 32 << 20
    free = torch.cuda.mem_get_info()[0] if dev == "cuda" else 8 << 30
    recs = []
    for name, hq, hkv, d in MODELS:
        for B in bs:
            for ctx in ctxs:
                kv_bytes = 2 * B * hkv * ctx * d * 2
                copies = max(1, math.ceil(3 * l2 / kv_bytes))
                if kv_bytes * copies > 0.8 * free:
                    recs.append({"model": name, "B": B, "ctx": ctx, "note": "skipped: exceeds memory"})
                    continue
                g = torch.Generator(device=dev).manual_seed(B * 100003 + ctx)
                q = torch.randn(B, hq, 1, d, device=dev, dtype=torch.float16, generator=g)
                ks = [torch.randn(B, hkv, ctx, d, device=dev, dtype=torch.float16, generator=g) for _ in range(copies)]
                vs = [torch.randn(B, hkv, ctx, d, device=dev, dtype=torch.float16, generator=g) for _ in range(copies)]

                def run(i):
                    return F.scaled_dot_product_attention(q, ks[i % copies], vs[i % copies], enable_gqa=hq != hkv)

                ms = time_ms(run, dev)
                moved = kv_bytes + 2 * q.numel() * 2
                recs.append({"model": name, "B": B, "ctx": ctx, "ms": ms, "gbs": moved / (ms * 1e-3) / 1e9})
                print(f"{name:11s} B={B:4d} ctx={ctx:6d}  sdpa fp16 {ms * 1e3:9.1f} us  {recs[-1]['gbs']:7.0f} GB/s")
                del ks, vs
                if dev == "cuda":
                    torch.cuda.empty_cache()
    out = {"device": torch.cuda.get_device_name(0) if dev == "cuda" else "cpu", "torch": torch.__version__,
           "kind": "decode", "impl": "torch.nn.functional.scaled_dot_product_attention fp16", "results": recs}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
