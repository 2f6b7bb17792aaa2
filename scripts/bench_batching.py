"""Capacity of the CPU LLM through the router: concurrency 1, 4, 8 and 16 in one run (continuous batching).

At each level, as many clients as its concurrency send `--requests` questions each, one after
another (distinct questions, streamed over HTTP through Triton's generate_stream route, 32 new
tokens each at temperature 0; `ignore_eos` makes every answer 32 tokens long, as serving
benchmarks do, so that levels compare the same work). Prints answers/s and its ratio to concurrency 1, time to first token p50/p99, time per output
token, and whether every greedy answer is the same as at concurrency 1.

    python scripts/bench_batching.py [--url host:http_port] [--levels 1 4 8 16] [--requests 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from benchlib import server
from transformers import AutoTokenizer

from client import RouterClient
from launcher import DEFAULT_MODELS_DIR

QUESTIONS = [
    "What is the capital of France?", "Name three rivers in India.", "Write a haiku about the sea.",
    "Explain photosynthesis in one sentence.", "What is 12 times 7?", "Give me a tip for learning Python.",
    "Who wrote Hamlet?", "Describe a cat in five words.", "Why is the sky blue?", "What is a prime number?",
    "How do airplanes stay in the air?", "Suggest a name for a bakery.", "What does a compiler do?",
    "List three healthy breakfasts.", "What is the boiling point of water?", "How many legs does a spider have?"]
OPTIONS = {"use_case": "agent", "stream": True,
           "sampling_parameters": {"max_tokens": 32, "temperature": 0, "ignore_eos": True}}


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(int(q * len(values)), len(values) - 1)]


def one(url: str, question: str) -> dict:
    first: list[float] = []
    t0 = time.perf_counter()
    routed = RouterClient(url, "http", timeout=600).route(
        question, OPTIONS, on_piece=lambda _: first.append(time.perf_counter()) if not first else None)
    return {"question": question, "text": routed.text, "ttft": first[0] - t0, "total": time.perf_counter() - t0}


def level(url: str, concurrency: int, requests: int) -> tuple[float, list[dict]]:
    """(wall seconds, results): `concurrency` clients, each sending `requests` questions in turn."""
    results: list[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for r in range(requests):
            out = one(url, QUESTIONS[(i * requests + r) % len(QUESTIONS)])
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--requests", type=int, default=3, help="questions each client sends")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    tokenizer = AutoTokenizer.from_pretrained(DEFAULT_MODELS_DIR / "smollm2-135m-instruct")
    with server(args.url, ["smollm2_135m_instruct", "query_classifier", "router"]) as (http_url, _, _srv):
        one(http_url, "Hello!")  # warm up
        reference = {q: one(http_url, q)["text"] for q in QUESTIONS}  # greedy answers one at a time
        rows, base = [], None
        print(f"{'conc':>4} {'answers/s':>9} {'x conc 1':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'ms/token':>9}  same")
        for c in args.levels:
            wall, results = level(http_url, c, args.requests)
            rate = len(results) / wall
            base = base or rate
            ttft = [r["ttft"] for r in results]
            per_token = statistics.median(
                (r["total"] - r["ttft"]) / max(len(tokenizer(r["text"])["input_ids"]) - 1, 1) for r in results)
            same = all(r["text"] == reference[r["question"]] for r in results)
            rows.append({"concurrency": c, "answers_per_s": round(rate, 3), "ratio": round(rate / base, 2),
                         "ttft_p50_s": round(pct(ttft, 0.5), 3), "ttft_p99_s": round(pct(ttft, 0.99), 3),
                         "ms_per_token": round(per_token * 1000, 1), "greedy_same": same})
            print(f"{c:>4} {rate:>9.2f} {rate / base:>8.2f} {pct(ttft, 0.5):>8.2f}s {pct(ttft, 0.99):>8.2f}s "
                  f"{per_token * 1000:>9.1f}  {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
