#!/usr/bin/env python3
"""Randomized check of the warp-specialized prefill kernel's synchronization (src/atom/backend/cuda/
attention_prefill_ws.cu) on the CPU: the producer warpgroup (two simulated threads, each copying and, for int
caches, converting half of a tile), the two consumer warpgroups, the full / empty mbarriers of the kStages ring,
the two turn-taking named barriers and the producer's own named barrier, interleaved in random orders, over a
persistent CTA's sequence of work items (the ring's stages and phases follow the CTA's running tile count); the
fp16 TMA fill (kWgmmaWsTma: one thread issues a full tile's copies, a copy engine lands them at any later time,
the "full" phase waits for the bytes) as a third case.

Each thread is a generator of steps; a step either runs or blocks on a barrier. Every shared-memory access is an
interval: a cp.async write lasts from its issue to the cp.async wait that covers it, a wgmma read from its issue
to the wgmma wait that covers it. The checker reports
  - a deadlock (no thread can step),
  - two overlapping accesses of one buffer, at least one a write (a race),
  - a read of a buffer that does not hold the expected tile when the read begins,
  - a named barrier left with arrivals nobody waits for at the end.
It mirrors the kernel: change one, change the other (GPU tests and racecheck remain the authority, but racecheck
does not see wgmma's reads). Pure Python; runs in under a second (ctest: reference.simulate_prefill_ws).
"""
import random
import sys

# ring depth per cache, as WsSmem<DT, D>::kStages
STAGES = {False: 4, True: 5}  # int_cache -> stages


def tma_tile(n_tiles, kt):
    """kWgmmaWsTma's fp16 fill: full tiles by TMA, a partial last tile by cp.async. Here an item's last tile is
    partial when its tile count is odd, so the cases hold both kinds."""
    return not (kt == n_tiles - 1 and n_tiles % 2 == 1)


class Sim:
    def __init__(self, stages):
        self.stages = stages
        self.full = [0] * stages       # arrivals on full[s] (a phase completes every 2 producer arrivals)
        self.empty = [0] * stages      # arrivals on empty[s] (a phase completes every 2 consumer arrivals)
        self.bar = {}                  # named barrier id -> [syncs, arrivals] per side, as phase counters
        self.live = {}                 # open accesses: key -> (buffer, tile, is_write)
        self.content = {}              # buffer -> tile fully written (after its write closed)
        self.problems = []
        self.tma_queue = []            # TMA tiles issued and not yet landed
        self.tma_pending = set()       # their tiles: the "full" phase waits for their bytes too

    # mbarriers: phase p of full[s] / empty[s] has completed once 2 (p + 1) arrivals are in
    def full_done(self, s, phase):
        return self.full[s] >= 2 * (phase + 1)

    def empty_done(self, s, phase):
        return phase < 0 or self.empty[s] >= 2 * (phase + 1)

    # accesses
    def open(self, key, buf, tile, write):
        for k, (b, t, w) in self.live.items():
            if b == buf and (w or write):
                self.problems.append(f"{key}: {'write' if write else 'read'} of {buf} (tile {tile}) overlaps "
                                     f"{k}'s {'write' if w else 'read'} (tile {t})")
        if not write and self.content.get(buf) != tile:
            self.problems.append(f"{key}: reads {buf} for tile {tile}, holds {self.content.get(buf)}")
        self.live[key] = (buf, tile, write)

    def close(self, key):
        buf, tile, write = self.live.pop(key)
        if write:
            self.content[buf] = tile


def named_sync(sim, bid, me):
    """bar.sync by one side of a two-sided named barrier: waits for the other side's matching arrival."""
    st = sim.bar.setdefault(bid, {"sync": 0, "arrive": 0})
    n = st["sync"]
    st["sync"] += 1
    while st["arrive"] <= n:
        yield "block"


def named_arrive(sim, bid):
    st = sim.bar.setdefault(bid, {"sync": 0, "arrive": 0})
    st["arrive"] += 1


def producer(sim, half, items, int_cache, pbar, tma=False):
    """One of two producer threads (half = 0, 1): as the kernel's producer branch. items: the tile counts of the
    CTA's work items in order (persistent kernel); buffers follow the CTA's running tile count g."""
    def wait_free(g):
        while not sim.empty_done(g % sim.stages, g // sim.stages - 1):
            yield "block"

    g = 0
    for n_tiles in items:
        if tma:  # thread 0 issues each full tile's TMA (both halves), the other thread only arrives
            for kt in range(n_tiles):
                yield from wait_free(g + kt)
                if tma_tile(n_tiles, kt):
                    if half == 0:
                        for h in (0, 1):
                            sim.open(f"tma{g + kt}-{h}", ("K", (g + kt) % sim.stages, h), g + kt, True)
                        sim.tma_pending.add(g + kt)
                        sim.tma_queue.append(g + kt)
                    sim.full[(g + kt) % sim.stages] += 1  # arrive (thread 0: arrive.expect_tx)
                else:  # cp.async, wait<0>, publish
                    key = f"p{half}-copy{g + kt}"
                    sim.open(key, ("K", (g + kt) % sim.stages, half), g + kt, True)
                    yield "step"
                    sim.close(key)
                    sim.full[(g + kt) % sim.stages] += 1
                yield "step"
            g += n_tiles
            continue
        if not int_cache:
            pending = []  # cp.async groups: (tile, key)
            for kt in range(n_tiles):
                yield from wait_free(g + kt)
                key = f"p{half}-copy{g + kt}"
                sim.open(key, ("K", (g + kt) % sim.stages, half), g + kt, True)  # this thread's half of K and V
                pending.append((g + kt, key))
                yield "step"
                if kt > 0:  # cp_async_wait<1>: all but the newest group
                    t, k = pending.pop(0)
                    sim.close(k)
                    sim.full[t % sim.stages] += 1  # publish
                yield "step"
            t, k = pending.pop(0)
            sim.close(k)
            sim.full[t % sim.stages] += 1
            g += n_tiles
            continue
        # int: raw stage (a tile ahead), then the conversion into the stage
        pending = []

        def issue_raw(t):
            key = f"p{half}-raw{t}"
            sim.open(key, ("raw", t % 2, half), t, True)
            pending.append(key)

        issue_raw(g)
        for kt in range(n_tiles):
            if kt + 1 < n_tiles:
                issue_raw(g + kt + 1)
            yield "step"
            sim.close(pending.pop(0))  # cp_async_wait<1>: raw tile kt (this thread's half)
            yield from pbar("mid", g + kt)  # every producer thread's half has landed
            yield from wait_free(g + kt)
            for h in (0, 1):  # the conversion reads chunks both threads copied
                sim.open(f"p{half}-cvt-read{g + kt}-{h}", ("raw", (g + kt) % 2, h), g + kt, False)
            sim.open(f"p{half}-cvt-write{g + kt}", ("K", (g + kt) % sim.stages, half), g + kt, True)
            yield "step"
            for h in (0, 1):
                sim.close(f"p{half}-cvt-read{g + kt}-{h}")
            sim.close(f"p{half}-cvt-write{g + kt}")
            sim.full[(g + kt) % sim.stages] += 1  # publish
            yield from pbar("end", g + kt)  # raw stage read by everyone: free for tile g+kt+2
            yield "step"
        g += n_tiles


def consumer(sim, cw, items):
    """Consumer warpgroup cw (0, 1): its turns, acquires and releases over the CTA's items, as the kernel's
    consumer branch (the last item's last turn of warpgroup 1 hands over to no one)."""
    def acquire(g):
        while not sim.full_done(g % sim.stages, g // sim.stages) or g in sim.tma_pending:
            yield "block"

    def read(g, what):  # a wgmma group reading both halves of stage g (S: K tile, P.V: V tile)
        for h in (0, 1):
            sim.open(f"c{cw}-{what}{g}-{h}", ("K", g % sim.stages, h), g, False)

    def done(g, what):
        for h in (0, 1):
            sim.close(f"c{cw}-{what}{g}-{h}")

    def turn():
        yield from named_sync(sim, 1 + cw, cw)

    def turn_end():
        named_arrive(sim, 1 + (1 - cw))

    if not items:
        return
    if cw == 1:
        named_arrive(sim, 1)
    g = 0
    for i, n_tiles in enumerate(items):
        more = i + 1 < len(items)
        yield from acquire(g)
        yield from turn()
        read(g, "S")
        turn_end()
        yield "step"
        done(g, "S")  # wgmma_wait<0>
        for kt in range(1, n_tiles):
            yield from acquire(g + kt)
            yield from turn()
            read(g + kt, "S")
            read(g + kt - 1, "PV")
            turn_end()
            yield "step"
            done(g + kt, "S")  # wait<1>
            yield "step"
            done(g + kt - 1, "PV")  # wait<0>
            sim.empty[(g + kt - 1) % sim.stages] += 1  # release (two consumer warpgroups: 2 arrivals per phase here)
            yield "step"
        yield from turn()
        read(g + n_tiles - 1, "PV")
        if cw == 0 or more:
            turn_end()
        yield "step"
        done(g + n_tiles - 1, "PV")
        sim.empty[(g + n_tiles - 1) % sim.stages] += 1
        g += n_tiles


def tma_engine(sim, n_copies, rng):
    """The copy engine: lands the issued TMA tiles, in any order, at any time after their issue."""
    landed = 0
    while landed < n_copies:
        if not sim.tma_queue:
            yield "block"
            continue
        g = sim.tma_queue.pop(rng.randrange(len(sim.tma_queue)))
        for h in (0, 1):
            sim.close(f"tma{g}-{h}")
        sim.tma_pending.discard(g)
        landed += 1
        yield "step"


def run(items, int_cache, seed, tma=False):
    sim = Sim(STAGES[int_cache])
    rng = random.Random(seed)
    pb = {}

    def pbar(tag, kt):  # the producer warpgroup's named barrier (both producer threads)
        key = (tag, kt)
        pb[key] = pb.get(key, 0) + 1
        while pb[key] < 2:
            yield "block"

    threads = [producer(sim, 0, items, int_cache, pbar, tma), producer(sim, 1, items, int_cache, pbar, tma),
               consumer(sim, 0, items), consumer(sim, 1, items)]
    if tma:
        threads.append(tma_engine(sim, sum(tma_tile(n, kt) for n in items for kt in range(n)), rng))
    alive = list(range(len(threads)))
    blocked_rounds = 0
    while alive:
        i = rng.choice(alive)
        try:
            r = next(threads[i])
        except StopIteration:
            alive.remove(i)
            blocked_rounds = 0
            continue
        blocked_rounds = blocked_rounds + 1 if r == "block" else 0
        if blocked_rounds > 200 * len(threads):
            sim.problems.append(f"deadlock with threads {alive} blocked")
            break
    for bid, st in sim.bar.items():
        if st["arrive"] != st["sync"]:
            sim.problems.append(f"named barrier {bid}: {st['arrive']} arrivals for {st['sync']} syncs")
    return sim.problems


def main():
    ok = True
    # one item of 1..17 tiles (the ring's laps), and persistent CTAs' item sequences (phases carried across
    # items, one-tile items, the producer running ahead into the next item)
    cases = [[n] for n in (1, 2, 3, 4, 5, 9, 17)] + [[3, 1, 5], [1, 1, 1, 1, 1], [4, 4, 4], [7, 2, 1, 6], [2, 9]]
    for int_cache, tma in ((False, False), (False, True), (True, False)):
        probs = []
        for items in cases:
            for seed in range(60):
                probs += [f"items={items} seed={seed}: {p}" for p in run(items, int_cache, seed, tma)]
        name = "int" if int_cache else "fp16 (TMA fill)" if tma else "fp16"
        print(f"{name} cache, {len(cases)} item sequences, 60 random schedules each: "
              + ("no hazards" if not probs else f"{len(probs)} problems, e.g. {probs[0]}"))
        ok = ok and not probs
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
