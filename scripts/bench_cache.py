"""The response cache's benchmark: each number beside its baseline, from one run on one machine.

1. The store alone: ResponseCache.get of a held answer, in-process and on a local Redis (redis-server
   started here when installed), against nothing (the cost floor of a hit).
2. Hit latency through the router over HTTP (goal p50 <= 10 ms), against misses of new questions
   (classify, route, generate 16 tokens with the LLM loaded).
3. Hit rate on a replayed workload with repeats (queries of tests/data/queries_unseen.jsonl, each
   asked 1-4 times in shuffled order), against the best possible (the share of repeats).

Usage: .venv/bin/python scripts/bench_cache.py [--url HOST:HTTP_PORT] [--cache-url URL] [--repeats N]
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchlib import cpu_name, server

from client import RouterClient
from model_router import REPO_ROOT
from model_router.cache import CachedAnswer, ResponseCache, key_of
from model_router.contract.router import RouterAnswer

GREEDY = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}, "cache": "exact"}
LLM = "smollm2_135m_instruct"
WORKLOAD = REPO_ROOT / "tests" / "data" / "queries_unseen.jsonl"


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    pick = lambda q: round(ms[min(len(ms) - 1, int(q * len(ms)))], 3)  # noqa: E731
    return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "n": len(ms)}


def store_gets(url: str, n: int) -> dict[str, float]:
    """Latency of get() of a held answer (a 16-token text, its pieces and a decision)."""
    cache = ResponseCache(url, semantic_threshold=None)
    key = key_of({"text": "What is the capital of France?"})
    answer = RouterAnswer("The capital of France is Paris.", decision={"model": "smollm2_135m_instruct", "use_case": "agent"})
    cache.put(key, CachedAnswer(answer, pieces=["The", " capital"] * 8))
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        assert cache.get(key)[1] == "hit"
        times.append(time.perf_counter() - t0)
    return percentiles(times)


def local_redis() -> tuple[subprocess.Popen, str] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", tempfile.gettempdir()], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def part_store(n: int) -> dict:
    result = {"memory": store_gets("memory", n)}
    started = local_redis()
    if started:
        proc, url = started
        try:
            result["redis"] = store_gets(url, n)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    return result


def part_hit_latency(client: RouterClient, repeats: int, misses: int = 5) -> dict:
    nonce = time.time_ns()  # questions new to any shared cache
    miss_s = []
    for i in range(misses):
        t0 = time.perf_counter()
        first = client.route(f"Name the largest ocean on Earth ({nonce + i}).", GREEDY)
        miss_s.append(time.perf_counter() - t0)
        assert first.decision.get("cache") == "miss", first.decision
    question = f"Name the largest ocean on Earth ({nonce + misses - 1})."
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        routed = client.route(question, GREEDY)
        times.append(time.perf_counter() - t0)
        assert routed.decision.get("cache") == "hit" and routed.text == first.text, routed.decision
    return {"miss": percentiles(miss_s), "completion_tokens": first.usage.completion_tokens if first.usage else None,
            "hit": percentiles(times)}


def part_hit_rate(client: RouterClient, queries: int, seed: int = 7) -> dict:
    rows = [json.loads(line) for line in WORKLOAD.read_text("utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    chosen = [r["text"] for r in rng.sample([r for r in rows if not r["attachments"]], queries)]
    nonce = time.time_ns()
    workload = [f"{text} [{nonce}]" for text in chosen for _ in range(rng.choice([1, 1, 2, 4]))]
    rng.shuffle(workload)
    said = Counter(client.route(text, GREEDY).decision.get("cache", "").split(" (")[0] for text in workload)
    best = len(workload) - len(set(workload))
    return {"requests": len(workload), "distinct": len(set(workload)), "hits": said["hit"],
            "hit_rate": round(said["hit"] / len(workload), 3), "best_possible": round(best / len(workload), 3),
            "decisions": dict(said)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (host:http_port); else one is started")
    parser.add_argument("--cache-url", default="memory", help="TMR_CACHE_URL of a server started here")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--queries", type=int, default=30, help="distinct queries of the replayed workload")
    parser.add_argument("--store-only", action="store_true", help="part 1 only (no server)")
    args = parser.parse_args()
    print("1. store get of a held answer:", json.dumps(part_store(1000)))
    if args.store_only:
        return
    with tempfile.TemporaryDirectory() as tmp, \
            server(args.url, ["query_classifier", "router", LLM], log_file=Path(tmp) / "tritonserver.log",
                   env={"TMR_CACHE_URL": args.cache_url}) as (http_url, _grpc, _srv):
        client = RouterClient(http_url, "http")
        print(f"cache {args.cache_url}, CPU {cpu_name()}")
        client.route("Warm up: say hi.", {**GREEDY, "cache": "off"})  # the classifier's and the LLM's first call
        print("2. hit latency through the router (HTTP):", json.dumps(part_hit_latency(client, args.repeats)))
        print("3. replayed workload:", json.dumps(part_hit_rate(client, args.queries)))


if __name__ == "__main__":
    main()
