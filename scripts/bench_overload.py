"""Overload: N clients at once (real threads, half gRPC, half HTTP) against the router, then recovery.

The router runs 16 requests and queues 32 (model_router/admission.py); the rest must be turned
away at once. Prints how many were served and rejected, the rejections' p50/p99/max as each
client saw them, the served ones' latency, and a probe request's latency before and after.

    python scripts/bench_overload.py --clients 100
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

from benchlib import server

from client import RouterClient

QUESTION, OPTIONS = "What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(int(q * len(values)), len(values) - 1)] if values else 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--clients", type=int, default=100)
    args = ap.parse_args()
    with server(args.url, ["smollm2_135m_instruct", "query_classifier", "router"]) as (http_url, grpc_url, _srv):
        def probe() -> float:
            t0 = time.perf_counter()
            assert "Paris" in RouterClient(grpc_url, "grpc", timeout=120).route(QUESTION, OPTIONS).text
            return time.perf_counter() - t0

        before = probe()
        results: list[tuple[str, float]] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            client = RouterClient(grpc_url, "grpc", timeout=300) if i % 2 else RouterClient(http_url, "http", timeout=300)
            t0 = time.perf_counter()
            try:
                client.route(QUESTION, OPTIONS)
                outcome = "served"
            except Exception as exc:
                outcome = "rejected" if "router overloaded" in str(exc) else f"failed: {exc}"
            with lock:
                results.append((outcome, time.perf_counter() - t0))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        time.sleep(1)
        after = probe()
    rejected = [t for o, t in results if o == "rejected"]
    served = [t for o, t in results if o == "served"]
    failed = [o for o, _ in results if o.startswith("failed")]
    print(f"{args.clients} clients at once: served {len(served)}, rejected {len(rejected)}, failed {len(failed)}")
    if rejected:
        print(f"rejections: p50 {pct(rejected, 0.5) * 1000:.0f} ms, p99 {pct(rejected, 0.99) * 1000:.0f} ms, "
              f"max {max(rejected) * 1000:.0f} ms")
    if served:
        print(f"served: p50 {statistics.median(served):.1f} s, max {max(served):.1f} s")
    print(f"probe (1 request) before {before:.2f} s, after {after:.2f} s")
    for f in failed[:5]:
        print(" ", f[:200])
    return 0 if not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
