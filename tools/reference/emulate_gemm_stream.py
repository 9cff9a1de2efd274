#!/usr/bin/env python3
"""Lane-by-lane emulation of the streaming decode GEMM (src/atom/backend/cuda/atom_gemm_stream.cu, configs
15/16) on the CPU, for checking its fragment and index logic where no GPU is at hand.

It packs random INT4 weights / activations as pack_int4_gpu does, unpacks them with the kernel's x16 split,
builds the m16n8k32 .s8 A/B fragments per lane as the PTX ISA defines them, and compares the kernel's
partial sums (exact) and outputs (fp64 vs the kernel's order, relative 1e-6) with
y[m,n] = sum_g sa[m,g] sw[n,g] sum_k qa qw + sao[m] swo[n] sum_o a8 w8. numpy only; runs in ~1 s.
It mirrors the kernel: change one, change the other (the GPU tests remain the authority).
"""
import numpy as np
rng = np.random.default_rng(0)
def pack(q, G):  # q [rows, G*128] int in -8..7 -> bytes [rows, G*64] (pack_int4_gpu)
    rows = q.shape[0]; out = np.zeros((rows, G*64), np.uint8)
    for j in range(G*128):
        g, e = divmod(j, 128); c, p = divmod(e, 32); half, p2 = divmod(p, 16); t, i = divmod(p2, 4)
        bit = half*16 + i*4; byte = g*64 + c*16 + t*4 + bit//8
        out[:, byte] |= ((q[:, j].astype(np.int64) & 0xF) << (bit % 8)).astype(np.uint8)
    return out
def word(b, off):  # little-endian 32-bit word from byte row
    return int(b[off]) | int(b[off+1])<<8 | int(b[off+2])<<16 | int(b[off+3])<<24
def unpack_x16_split(w):
    lo = (w << 4) & 0xF0F0F0F0; hi = w & 0xF0F0F0F0
    return lo & 0xFFFFFFFF, hi
def s8x4(w):
    return [np.int8(np.uint8((w >> (8*i)) & 0xFF)) for i in range(4)]
def mma(acc, A, B):
    # A[lane] = (a0,a1,a2,a3), B[lane] = (b0,b1): PTX m16n8k32 s8 fragments; acc[lane][4] int
    Am = np.zeros((16, 32), np.int64); Bm = np.zeros((32, 8), np.int64)
    for lane in range(32):
        g, c = divmod(lane, 4)
        a = A[lane]
        for i in range(4):
            Am[g, 4*c+i] = s8x4(a[0])[i]; Am[g+8, 4*c+i] = s8x4(a[1])[i]
            Am[g, 16+4*c+i] = s8x4(a[2])[i]; Am[g+8, 16+4*c+i] = s8x4(a[3])[i]
        b = B[lane]
        for i in range(4):
            Bm[4*c+i, g] = s8x4(b[0])[i]; Bm[16+4*c+i, g] = s8x4(b[1])[i]
    D = Am @ Bm
    for lane in range(32):
        g, c = divmod(lane, 4)
        acc[lane][0] += D[g, 2*c]; acc[lane][1] += D[g, 2*c+1]; acc[lane][2] += D[g+8, 2*c]; acc[lane][3] += D[g+8, 2*c+1]
def run(M, N, G, O, NT, kWarps=8):
    qw = rng.integers(-8, 8, (N, G*128)); qa = rng.integers(-8, 8, (M, G*128))
    w4 = pack(qw, G); a4 = pack(qa, G)
    sw = rng.uniform(0.5, 2, (N, G)).astype(np.float32); sa = rng.uniform(0.5, 2, (M, G)).astype(np.float32)
    w8 = rng.integers(-127, 128, (N, O)); a8 = rng.integers(-127, 128, (M, O))
    swo = rng.uniform(0.5, 2, N).astype(np.float32); sao = rng.uniform(0.5, 2, M).astype(np.float32)
    ref = np.zeros((M, N)); ps_ref = np.zeros((M, N, G+1), np.int64)
    for g in range(G):
        P = qa[:, g*128:(g+1)*128] @ qw[:, g*128:(g+1)*128].T
        ps_ref[:, :, g] = P; ref += sa[:, g:g+1] * sw[:, g][None, :] * P
    Po = a8 @ w8.T; ps_ref[:, :, G] = Po; ref += sao[:, None] * swo[None, :] * Po
    y = np.zeros((M, N)); ps = np.zeros((M, N, G+1), np.int64)
    BM = 8*NT
    for bx in range((N+15)//16):
        for by in range((M+BM-1)//BM):
            n0, m0 = bx*16, by*BM
            red = np.zeros((kWarps, BM, 16))
            for warp in range(kWarps):
                facc = [[[0.0]*4 for _ in range(NT)] for _ in range(32)]
                gis = list(range(warp, G, kWarps))
                for gi in gis:
                    A = []; Bt = [[None]*32 for _ in range(NT)]
                    for lane in range(32):
                        g, c = divmod(lane, 4)
                        r0 = min(n0+g, N-1); r1 = min(n0+g+8, N-1)
                        A.append([[0]*4 for _ in range(4)])
                        for kk in range(4):
                            lo0, hi0 = unpack_x16_split(word(w4[r0], gi*64 + 16*c + 4*kk))
                            lo1, hi1 = unpack_x16_split(word(w4[r1], gi*64 + 16*c + 4*kk))
                            A[lane][kk] = (lo0, lo1, hi0, hi1)
                        for t in range(NT):
                            tok = m0 + 8*t + g
                            Bt[t][lane] = [unpack_x16_split(word(a4[tok], gi*64 + 16*c + 4*kk)) if tok < M else (0, 0) for kk in range(4)]
                    for t in range(NT):
                        acc = [[0]*4 for _ in range(32)]
                        for kk in range(4):
                            mma(acc, [A[l][kk] for l in range(32)], [Bt[t][l][kk] for l in range(32)])
                        for lane in range(32):
                            g, c = divmod(lane, 4)
                            r0 = min(n0+g, N-1); r1 = min(n0+g+8, N-1)
                            for e in range(4):
                                rr = (r0, r1)[e//2]; ct = m0 + 8*t + 2*c + e % 2
                                s_w = sw[rr, gi] / 256.0; s_a = sa[ct, gi] if ct < M else 0.0
                                facc[lane][t][e] += acc[lane][e] * s_w * s_a
                                r = n0 + g + 8*(e//2)
                                if r < N and ct < M: ps[ct, r, gi] = acc[lane][e] // 256
                if O > 0 and warp == kWarps - 1:
                    acc = [[[0]*4 for _ in range(NT)] for _ in range(32)]
                    for kb in range(0, O, 64):
                        A = []; Bs = [[None]*32 for _ in range(NT)]
                        for lane in range(32):
                            g, c = divmod(lane, 4)
                            r0 = min(n0+g, N-1); r1 = min(n0+g+8, N-1)
                            ok = kb + 16*c < O
                            def w8word(row, i, arr=w8):
                                b = (arr[row, kb+16*c+4*i: kb+16*c+4*i+4].astype(np.int64) & 0xFF)
                                return int(b[0] | b[1]<<8 | b[2]<<16 | b[3]<<24)
                            u0 = [w8word(r0, i) if ok else 0 for i in range(4)]; u1 = [w8word(r1, i) if ok else 0 for i in range(4)]
                            A.append((u0, u1))
                            for t in range(NT):
                                tok = m0 + 8*t + g
                                Bs[t][lane] = [w8word(tok, i, a8) if ok and tok < M else 0 for i in range(4)]
                        for t in range(NT):
                            acc_t = [acc[l][t] for l in range(32)]
                            mma(acc_t, [(A[l][0][0], A[l][1][0], A[l][0][1], A[l][1][1]) for l in range(32)], [(Bs[t][l][0], Bs[t][l][1]) for l in range(32)])
                            mma(acc_t, [(A[l][0][2], A[l][1][2], A[l][0][3], A[l][1][3]) for l in range(32)], [(Bs[t][l][2], Bs[t][l][3]) for l in range(32)])
                    for lane in range(32):
                        g, c = divmod(lane, 4)
                        r0 = min(n0+g, N-1); r1 = min(n0+g+8, N-1)
                        for t in range(NT):
                            for e in range(4):
                                rr = (r0, r1)[e//2]; tok = m0 + 8*t + 2*c + e % 2
                                s_a = sao[tok] if tok < M else 0.0
                                facc[lane][t][e] += acc[lane][t][e] * swo[rr] * s_a
                                r = n0 + g + 8*(e//2)
                                if r < N and tok < M: ps[tok, r, G] = acc[lane][t][e]
                for lane in range(32):
                    g, c = divmod(lane, 4)
                    for t in range(NT):
                        for e in range(4):
                            red[warp, 8*t + 2*c + e % 2, g + 8*(e//2)] = facc[lane][t][e]
            for tl in range(BM):
                for nl in range(16):
                    tok, n = m0 + tl, n0 + nl
                    if tok < M and n < N: y[tok, n] = red[:, tl, nl].sum()
    err = np.abs(y - ref).max() / np.abs(ref).max()
    assert (ps == ps_ref).all(), "psums differ"
    print(f"M={M} N={N} G={G} O={O} NT={NT}: psums exact, max rel err {err:.2e}")
    assert err < 1e-6
run(5, 40, 3, 128, 1)
run(13, 23, 2, 48, 2)
run(9, 16, 1, 0, 1)
run(37, 40, 3, 32, 4)  # config 18: 4 token tiles (32 tokens), a ragged second CTA row
