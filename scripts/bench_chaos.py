"""Faults under load: clients ask without pause through the OpenAI front while stubs are killed.

6 clients (text and speech in turn) for 100 s; every 20 s one stub is SIGKILLed: the LLM, the
router, the classifier, the LLM again. The run command's watchdog reloads the router; the router's
health watcher reloads the rest. Prints how many requests were answered, how many got an error (and
which), the slowest, and whether 10 requests in a row are answered right after.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

from launcher import FrontProcess, TritonServer, free_port, keep_router_alive
from model_router.serving.stubs import stub_pids

LLM = "smollm2_135m_instruct"
VICTIMS = (LLM, "router", "query_classifier", LLM)
HANG_S = 90.0


def ask(url: str, i: int) -> tuple[str, float]:
    """One request (text, or speech every other time); ("ok" | the error, seconds)."""
    if i % 2:
        path, body = "/v1/audio/speech", {"model": "auto", "voice": "alloy", "input": f"Good morning number {i}."}
    else:
        path, body = "/v1/chat/completions", {"model": "auto", "max_tokens": 24, "temperature": 0.7,
                                              "messages": [{"role": "user", "content": f"Say something about {i}."}]}
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=HANG_S + 30) as resp:
            resp.read()
        return "ok", time.perf_counter() - t0
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {json.loads(exc.read() or b'{}').get('error', {}).get('message', '')[:80]}", time.perf_counter() - t0
    except Exception as exc:  # a timeout is a hang
        return f"{type(exc).__name__}", time.perf_counter() - t0


def kill(server: TritonServer, model: str) -> str:
    pids = stub_pids(server.proc.pid).get(model, [])
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return f"killed {model} ({len(pids)} stub)" if pids else f"{model}: no stub to kill"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=100.0)
    ap.add_argument("--every", type=float, default=20.0)
    args = ap.parse_args()
    server = TritonServer(load=["query_classifier", "router", LLM, "tts_espeak"]).start(timeout=300)
    stop = threading.Event()
    threading.Thread(target=keep_router_alive, args=(server, stop, 0.5), daemon=True).start()
    front = FrontProcess(server.grpc_url, port=free_port(), host="127.0.0.1").start()
    results: list[tuple[str, float, float]] = []  # (outcome, seconds, asked at)
    slow: list[str] = []  # the requests past the hang bound
    begin = time.monotonic()
    end = begin + args.seconds

    def client(c: int) -> None:
        i = c
        while time.monotonic() < end:
            t = time.monotonic() - begin
            outcome, took = ask(front.url, i)
            results.append((outcome, took, t))
            if took > HANG_S:
                slow.append(f"asked at {t:.0f} s ({'speech' if i % 2 else 'chat'}): {took:.1f} s, {outcome}")
            i += args.clients

    try:
        pool = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
        for t in pool:
            t.start()
        for n, victim in enumerate(VICTIMS, 1):
            time.sleep(max(0.0, end - args.seconds + n * args.every - time.monotonic()))
            print(f"{n * args.every:5.0f} s: {kill(server, victim)}", flush=True)
        for t in pool:
            t.join()
        after = [ask(front.url, i) for i in range(10)]
    finally:
        front.stop()
        stop.set()
        server.stop(60)
    outcomes = Counter(r for r, *_ in results)
    answered = outcomes["ok"]
    slowest = max(s for _, s, _ in results)
    print(f"{len(results)} requests in {args.seconds:.0f} s by {args.clients} clients: {answered} answered "
          f"({answered / len(results):.1%}), p50 {statistics.median(s for _, s, _ in results):.2f} s, slowest {slowest:.1f} s "
          f"(hang: > {HANG_S:.0f} s)")
    for outcome, count in outcomes.most_common():
        if outcome != "ok":
            when = [f"{t:.0f} s" for r, _, t in results if r == outcome]
            print(f"  {count} x {outcome} (asked at {', '.join(when)})")
    for line in slow:
        print(f"  past the hang bound: {line}")
    print(f"right after: {sum(r == 'ok' for r, _ in after)}/10 answered in a row")


if __name__ == "__main__":
    main()
