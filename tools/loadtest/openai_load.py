#!/usr/bin/env python3
"""Load test for an OpenAI-compatible server (atom serve or any other): many concurrent streaming
clients, some hanging up mid-stream, then checks that nothing leaked and nothing was corrupted.

  1. --clients threads each POST a streaming greedy /v1/completions (seeded random prompt and length);
     a --disconnect share of them close the connection after their first few events.
  2. waits until the server reports no running / waiting request and no KV page in use (/metrics);
  3. replays every completed request alone (non-streaming, greedy) and compares the text: batching,
     preemption and the disconnects around it must not change any answer;
  4. /health must still answer.
Prints a JSON summary; exits 1 on any failure. Standard library only.

Usage: python3 tools/loadtest/openai_load.py --url http://127.0.0.1:8000 [--clients 256] [--disconnect 0.1]
           [--max-tokens 8:64] [--prompt-words 4:60] [--seed 0] [--timeout 300] [--json OUT]
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her she there one all we their can has been if more when will would who so "
         "history river city music people water game season north time year").split()


def conn(url, timeout):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)


def get(url, path, timeout=10):
    c = conn(url, timeout)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body


def metrics(url):
    _, body = get(url, "/metrics")
    out = {}
    for line in body.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, val = line.rsplit(" ", 1)
        out[name.split("{")[0]] = float(val)
    return out


def stream_job(url, job, timeout):
    body = json.dumps({"prompt": job["prompt"], "max_tokens": job["max_tokens"], "temperature": 0,
                       "ignore_eos": True, "stream": True})
    try:
        c = conn(url, timeout)
        c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            job["error"] = f"HTTP {r.status}: {r.read()[:200]!r}"
            return
        text, events = [], 0
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                job["done"] = True
                break
            ev = json.loads(data)
            events += 1
            if "error" in ev:
                job["error"] = str(ev["error"])
                break
            ch = ev.get("choices") or []
            if ch:
                text.append(ch[0].get("text", ""))
                if ch[0].get("finish_reason"):
                    job["finish"] = ch[0]["finish_reason"]
            if job["hang_up"] and events >= job["hang_up_after"]:
                c.sock.close()  # the client goes away mid-stream
                break
        job["text"] = "".join(text)
        job["events"] = events
        c.close()
    except Exception as e:  # noqa: BLE001 - a transport failure is a result here
        job["error"] = f"{type(e).__name__}: {e}"


def complete_alone(url, job, timeout):
    body = json.dumps({"prompt": job["prompt"], "max_tokens": job["max_tokens"], "temperature": 0,
                       "ignore_eos": True})
    c = conn(url, timeout)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    data = json.loads(r.read())
    c.close()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {data}")
    return data["choices"][0]["text"]


def span(s):
    lo, hi = (int(x) for x in s.split(":"))
    return lo, hi


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--clients", type=int, default=256)
    ap.add_argument("--disconnect", type=float, default=0.1)
    ap.add_argument("--max-tokens", type=span, default=(8, 64))
    ap.add_argument("--prompt-words", type=span, default=(4, 60))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--json")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    jobs = []
    for i in range(a.clients):
        n = rng.randint(*a.prompt_words)
        hang = rng.random() < a.disconnect
        jobs.append({"id": i, "prompt": " ".join(rng.choice(WORDS) for _ in range(n)),
                     "max_tokens": 400 if hang else rng.randint(*a.max_tokens), "hang_up": hang,
                     "hang_up_after": rng.randint(1, 4), "text": "", "finish": None, "error": None, "done": False})
    t0 = time.time()
    threads = [threading.Thread(target=stream_job, args=(a.url, j, a.timeout)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load_s = time.time() - t0
    failures = []
    # 2. the engine drains: no request left, no page in use
    deadline, m = time.time() + 60, {}
    while time.time() < deadline:
        m = metrics(a.url)
        if m.get("atom_num_requests_running", 0) == 0 and m.get("atom_num_requests_waiting", 0) == 0 \
                and m.get("atom_kv_cache_pages_used", 0) == 0:
            break
        time.sleep(0.5)
    else:
        failures.append(f"server did not drain: {m}")
    # 3. completed requests equal their single-request greedy output
    completed = [j for j in jobs if not j["hang_up"]]
    mismatches = 0
    for j in completed:
        if j["error"] or not j["done"] or j["finish"] != "length":
            failures.append(f"client {j['id']}: error={j['error']} done={j['done']} finish={j['finish']}")
            continue
        alone = complete_alone(a.url, j, a.timeout)
        if alone != j["text"]:
            mismatches += 1
            failures.append(f"client {j['id']}: concurrent text differs from the single request "
                            f"({j['text'][:60]!r} vs {alone[:60]!r})")
    status, _ = get(a.url, "/health")
    if status != 200:
        failures.append(f"/health answered {status}")
    m = metrics(a.url)
    summary = {"clients": a.clients, "disconnected": sum(j["hang_up"] for j in jobs), "completed": len(completed),
               "mismatches": mismatches, "load_seconds": round(load_s, 2),
               "generated_tokens": m.get("atom_generation_tokens_total"),
               "preemptions": m.get("atom_num_preemptions_total"), "largest_batch": m.get("atom_largest_batch"),
               "kv_pages_used_after": m.get("atom_kv_cache_pages_used"), "failures": failures[:20],
               "ok": not failures}
    print(json.dumps(summary, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
