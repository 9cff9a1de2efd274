#!/usr/bin/env python3
"""Emulation of the wgmma prefill attention kernel's data movement (src/atom/backend/cuda/
attention_prefill_wgmma.cu; attention_prefill_ws.cu uses the same tiles) on the CPU, for checking its layouts
where no GPU is at hand.

One CTA (2 warpgroups, 128 query rows, 64-key tiles, 128 for the fp16 cache), fp16 values (the dequantization itself is the
mma.sync kernel's, tested on the GPU). Emulated as the kernel does it:
  - K and V tiles: key rows in the 128-byte swizzle (tile_swz), for every cache dtype: fp16 rows cp.async'd
    straight into them, int8/int4 chunks dequantized into them by RowConverter (8 keys of one chunk per 8
    lanes: sweep_item; int4 rows in the interleaved order interleaved_dim, which Q's fragments and O's
    columns follow); raw stages row-major with XOR-permuted 16-byte slots (raw_swz);
  - wgmma B reads through the descriptors: the K tile as a K-major 128-byte-swizzled B, start +
    (n/8) 1024 + (n%8) 128 + 2k with address bits 4..6 XORed by bits 7..9, start = atom column + 32 per k16;
    the V tile as an N-major (transposed) swizzled B: element (n = d, k = key) at start + (n/64) LBO +
    (k/8) SBO + (k%8) 128 + 2 (n%64), XORed the same way, LBO = one atom column (64 keys x 128 bytes),
    SBO = 1024, start + 2048 per k16 (CUTLASS's canonical MN-major SW128 layout, ((8,n),(8,k)):((1,LBO),(8,SBO))
    in 16-byte units);
  - the shared-memory bank behaviour of every warp-wide access of the tile movement (the fill, both
    conversion's reads and stores), counted as wavefronts against the minimum (bank_report);
  - A fragments per lane (Q from global memory, P from the S accumulator layout), accumulator layout
    d[4j+e] = D[16w + g + 8(e/2)][8j + 2t + (e%2)];
  - causal mask and the online softmax in the kernel's order.
The output is compared with softmax(Q K^T) V computed directly (fp64; the kernel's fp16 roundings of P
are reproduced, so the bound is 1e-5 relative). numpy only; runs in a few seconds.
It mirrors the kernel: change one, change the other (GPU tests remain the authority).
"""
import sys
import numpy as np

BN, WG = 64, 2
BM = 64 * WG


def raw_swz(r, ch, chunks):
    lin = r * chunks + ch
    h = r & 7 if chunks >= 8 else (lin >> 3) & 7
    return ((lin & ~7) | ((lin ^ h) & 7)) * 16


def tile_swz(r, ch, bn=BN):  # bn: keys per tile (128 for fp16 in the plain schedule)
    return (ch >> 3) * bn * 128 + (r >> 3) * 1024 + (r & 7) * 128 + (((ch & 7) ^ (r & 7)) << 4)


def swz128_read(smem, start, n_rows, k16):
    """The 16-element K slice k16 of a 128-byte-swizzled K-major B operand (fp16, n_rows keys), as wgmma reads it."""
    out = np.zeros((n_rows, 16), np.float16)
    h = smem.view(np.uint16)
    base = start + (k16 // 4) * n_rows * 128 + (k16 % 4) * 32
    for n in range(n_rows):
        for k in range(16):
            addr = base + (n // 8) * 1024 + (n % 8) * 128 + 2 * k
            addr ^= ((addr >> 7) & 7) << 4
            out[n, k] = h[addr // 2:addr // 2 + 1].view(np.float16)[0]
    return out


def swz128_read_mn(smem, start, n_cols, k16, bn):
    """The k16 slice (16 keys) of an N-major 128-byte-swizzled B operand (fp16 V tile of bn keys), as [n = d][k = key]."""
    out = np.zeros((n_cols, 16), np.float16)
    h = smem.view(np.uint16)
    base = start + 2048 * k16
    for n in range(n_cols):
        for k in range(16):
            addr = base + (n // 64) * bn * 128 + (k // 8) * 1024 + (k % 8) * 128 + 2 * (n % 64)
            addr ^= ((addr >> 7) & 7) << 4
            out[n, k] = h[addr // 2:addr // 2 + 1].view(np.float16)[0]
    return out


def sweep_item(i, chunks):
    return (i & 7) + 8 * (i // (8 * chunks)), (i >> 3) % chunks


def wavefronts(addrs, nbytes):
    """Shared-memory wavefronts of one warp-wide access of nbytes per lane (16 B: 4 phases of 8 lanes,
    8 B: 2 of 16, 4 B: 1 of 32); within a phase, the most distinct 4-byte words any one bank serves."""
    per_phase = {16: 8, 8: 16, 4: 32}[nbytes]
    total = 0
    for p0 in range(0, 32, per_phase):
        banks = {}
        for a in addrs[p0:p0 + per_phase]:
            for w in range(a // 4, (a + nbytes) // 4):
                banks.setdefault(w % 32, set()).add(w)
        total += max(len(v) for v in banks.values())
    return total, 32 * nbytes // 128


def bank_report(D, bits):
    """Worst ratio wavefronts / minimum over every warp of each access pattern of the kernel."""
    chunks = D * bits // 8 // 16
    pieces = {16: 1, 8: 2, 4: 4}[bits]
    worst = {}

    def note(name, addrs, nbytes):
        got, best = wavefronts(addrs, nbytes)
        worst[name] = max(worst.get(name, 0), got / best)

    n_items = BN * chunks
    for w0 in range(0, n_items, 32):
        fill = [divmod(i, chunks) for i in range(w0, w0 + 32)]  # (key, chunk) as the page stores them
        if bits == 16:
            note("fp16 K / V fill (swizzled)", [tile_swz(r, ch) for r, ch in fill], 16)
        else:
            note("fill raw (cp.async)", [raw_swz(r, ch, chunks) for r, ch in fill], 16)
        items = [sweep_item(i, chunks) for i in range(w0, w0 + 32)]
        if bits != 16:  # RowConverter, K and V alike
            note("convert read", [raw_swz(r, ch, chunks) for r, ch in items], 16)
            for p in range(pieces):
                note("tile store", [tile_swz(r, ch * pieces + p) for r, ch in items], 16)
    return worst


def interleaved_dim(s):
    """attention_prefill.cuh: slot s of an int4 tile row holds element interleaved_dim(s) (0 4 1 5 2 6 3 7 per 8)."""
    return (s & ~7) | (s & 1) << 2 | (s >> 1 & 3)


def slot_dims(D, bits):
    """The element each slot of a tile row holds: the identity, or the int4 tiles' interleaved order."""
    return np.array([interleaved_dim(s) if bits == 4 else s for s in range(D)])


def convert_tile(Kt, Vt, D, bits):
    """Kt, Vt [bn][D] float16 (zeros past the end) -> (sK, sV) byte arrays as the kernel writes them: by the
    fp16 fill (16 bits: 16-byte chunks as stored), else by RowConverter (a raw chunk of 128 / bits elements
    is 16 / bits pieces of 8, stored at tile_swz(r, ch * pieces + p)); the same layout either way, int4 rows
    with their elements in slot_dims order."""
    bn = Kt.shape[0]
    pieces = {16: 1, 8: 2, 4: 4}[bits]
    sK = np.zeros(bn * D * 2, np.uint8)
    sV = np.zeros(bn * D * 2, np.uint8)
    perm = slot_dims(D, bits)
    kb = np.ascontiguousarray(Kt[:, perm]).view(np.uint16)
    vb = np.ascontiguousarray(Vt[:, perm]).view(np.uint16)
    for r in range(bn):
        for ch in range(D // (8 * pieces)):  # one raw chunk (fp16: one 16-byte chunk)
            for p in range(pieces):
                d0 = 8 * (ch * pieces + p)
                off = tile_swz(r, ch * pieces + p, bn)
                sK[off:off + 16] = kb[r, d0:d0 + 8].view(np.uint8)
                sV[off:off + 16] = vb[r, d0:d0 + 8].view(np.uint8)
    return sK, sV


def a_frag_matrix(frags):
    """frags[warp][lane] = 4 registers of (lo, hi) fp16 -> the 64x16 A matrix wgmma sees."""
    A = np.zeros((64, 16), np.float16)
    for w in range(4):
        for lane in range(32):
            g, t = divmod(lane, 4)
            a = frags[w][lane]
            A[16 * w + g, 2 * t:2 * t + 2] = a[0]
            A[16 * w + g + 8, 2 * t:2 * t + 2] = a[1]
            A[16 * w + g, 8 + 2 * t:8 + 2 * t + 2] = a[2]
            A[16 * w + g + 8, 8 + 2 * t:8 + 2 * t + 2] = a[3]
    return A


def run(D, nq, ln, seed, bits):
    bn = 128 if bits == 16 else BN  # kTileKeys: fp16 tiles hold 128 keys in the plain schedule
    perm = slot_dims(D, bits)
    rng = np.random.default_rng(seed)
    q = rng.uniform(-1, 1, (nq, D)).astype(np.float16)
    k = rng.uniform(-1, 1, (ln, D)).astype(np.float16)
    v = rng.uniform(-1, 1, (ln, D)).astype(np.float16)
    scale_log2 = (1.0 / np.sqrt(D)) * 1.4426950408889634
    out = np.zeros((nq, D), np.float64)
    for qt in range((nq + BM - 1) // BM):
        row0 = qt * BM
        nrows = min(BM, nq - row0)
        qpos0 = ln - nq + row0
        kend = min(ln, qpos0 + nrows)
        n_tiles = (kend + bn - 1) // bn
        for wg in range(WG):
            # Q fragments per (warp, lane, kb): rows 64wg + 16w + g (+8), as the kernel loads them
            qfr = {}
            for w in range(4):
                for lane in range(32):
                    g, t = divmod(lane, 4)
                    rows = [64 * wg + 16 * w + g, 64 * wg + 16 * w + g + 8]
                    for kb in range(D // 16):
                        regs = []
                        for (ri, off) in ((0, 0), (1, 0), (0, 8), (1, 8)):
                            r = rows[ri]
                            if r < nrows:  # k-slots 2t, 2t+1: the K tile's slot order (WgRows::q_pair)
                                s0 = 16 * kb + off + 2 * t
                                regs.append(q[row0 + r, perm[s0:s0 + 2]])
                            else:
                                regs.append(np.zeros(2, np.float16))
                        qfr[(w, lane, kb)] = regs
            m = np.full(64, -np.inf)
            l = np.zeros(64)
            o = np.zeros((64, D))
            for kt in range(n_tiles):
                Kt = np.zeros((bn, D), np.float16)
                Vt = np.zeros((bn, D), np.float16)
                n_valid = min(bn, kend - kt * bn)
                Kt[:n_valid] = k[kt * bn:kt * bn + n_valid]
                Vt[:n_valid] = v[kt * bn:kt * bn + n_valid]
                sK, sV = convert_tile(Kt, Vt, D, bits)
                S = np.zeros((64, bn))
                for kb in range(D // 16):
                    A = a_frag_matrix([[qfr[(w, lane, kb)] for lane in range(32)] for w in range(4)]).astype(np.float64)
                    B = swz128_read(sK, 0, bn, kb).astype(np.float64)  # [n = key][k]
                    S += A @ B.T
                # mask + online softmax per row (the accumulator holds row-major S here)
                rows = 64 * wg + np.arange(64)
                qpos = np.where(rows < nrows, qpos0 + rows, -1)
                keys = kt * bn + np.arange(bn)
                S = S * scale_log2
                S = np.where(keys[None, :] <= qpos[:, None], S, -np.inf)
                mnew = np.maximum(m, S.max(axis=1))
                muse = np.where(mnew == -np.inf, 0.0, mnew)
                corr = np.exp2(m - muse)
                m = mnew
                P = np.exp2(S - muse[:, None])
                l = l * corr + P.sum(axis=1)
                o *= corr[:, None]
                P16 = P.astype(np.float16)  # pack_half2
                # P fragments from the accumulator layout d[4j+e] -> A registers of k16 step kk
                for kk in range(bn // 16):
                    frags = []
                    for w in range(4):
                        fl = []
                        for lane in range(32):
                            g, t = divmod(lane, 4)
                            d = {}
                            for j in (2 * kk, 2 * kk + 1):
                                for e in range(4):
                                    d[(j, e)] = P16[16 * w + g + 8 * (e // 2), 8 * j + 2 * t + (e % 2)]
                            j0, j1 = 2 * kk, 2 * kk + 1
                            fl.append([np.array([d[(j0, 0)], d[(j0, 1)]]), np.array([d[(j0, 2)], d[(j0, 3)]]),
                                       np.array([d[(j1, 0)], d[(j1, 1)]]), np.array([d[(j1, 2)], d[(j1, 3)]])])
                        frags.append(fl)
                    A = a_frag_matrix(frags).astype(np.float64)
                    B = swz128_read_mn(sV, 0, D, kk, bn).astype(np.float64)  # [n = d][k = key]
                    o += A @ B.T
            for r in range(64):
                rr = 64 * wg + r
                if rr < nrows:  # O's column s is dim perm[s] (WgRows::store)
                    out[row0 + rr, perm] = o[r] / l[r] if l[r] > 0 else 0.0
    # reference: causal softmax attention with P rounded to fp16 as the kernel does (per tile max, so
    # compare against exact softmax with a tolerance covering that rounding)
    ref = np.zeros((nq, D))
    qf, kf, vf = q.astype(np.float64), k.astype(np.float64), v.astype(np.float64)
    for i in range(nq):
        pos = ln - nq + i
        s = (qf[i] @ kf[:pos + 1].T) / np.sqrt(D)
        p = np.exp(s - s.max())
        ref[i] = (p @ vf[:pos + 1]) / p.sum()
    err = np.abs(out - ref).max()
    return err


def main():
    worst = 0.0
    for D, nq, ln in ((128, 130, 300), (64, 129, 129), (128, 64, 700), (64, 1, 65)):
        for bits in (16, 8, 4):
            err = run(D, nq, ln, seed=D + nq + ln, bits=bits)
            what = {16: "fp16 fill", 8: "int8 RowConverter", 4: "int4 RowConverter (interleaved dims)"}[bits]
            print(f"D={D} nq={nq} len={ln} {what}: max |out - ref| = {err:.2e}")
            worst = max(worst, err)
    # fp16 P (11-bit mantissa) against exact softmax: a few 1e-3 of max|V| = 1
    ok = worst < 5e-3
    for D in (64, 128):
        for bits in (16, 8, 4):
            rep = bank_report(D, bits)
            print(f"banks D={D} {bits}-bit: " + ", ".join(f"{k} {v:.2g}x" for k, v in rep.items()))
            ok = ok and all(v == 1 for v in rep.values())  # every access at its minimum wavefront count
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
