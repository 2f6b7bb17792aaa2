"""Load thrashing: under a budget that holds one LLM, a client alternating options.model between the
two LLMs, while another client asks the loaded one. Prints how many loads and evictions the thrasher
caused, and the other client's latency p50/p99 alone and beside the thrasher (target: p99 within 2x).

    python scripts/bench_thrash.py [--seconds 60]
"""
from __future__ import annotations

import argparse
import threading
import time

from bench_overload import pct
from benchlib import server

from client import RouterClient
from client.stats import parse

LLM, TWIN = "smollm2_135m_instruct", "smollm2_135m_instruct_bf16"
SHORT = {"sampling_parameters": {"max_tokens": 16, "temperature": 0}}


def timed(client: RouterClient, seconds: float) -> list[float]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        client.route("What is the capital of France?", {**SHORT, "model": LLM})
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    # Pinned 400 MB + one LLM fits; two do not. The default minimum residency (60 s) applies.
    with server(None, ["query_classifier", "router", LLM], env={"TMR_MEMORY_BUDGET_MB": "1400"}) as (http_url, grpc_url, srv):
        other = RouterClient(grpc_url, "grpc", timeout=300)
        timed(other, 5)  # warm up
        alone = timed(other, args.seconds / 2)
        stop, switches = threading.Event(), []

        def thrash() -> None:
            client, i = RouterClient(grpc_url, "grpc", timeout=300), 0
            while not stop.is_set():
                decision = client.route("Hello!", {**SHORT, "model": (TWIN, LLM)[i % 2]}).decision
                switches.append(decision["model"])
                i += 1

        t = threading.Thread(target=thrash)
        t.start()
        beside = timed(other, args.seconds)
        stop.set()
        t.join()
        metrics = parse(RouterClient(http_url).metrics(f"127.0.0.1:{srv.metrics_port}"))
    loads = sum(v for labels, sfx, v in metrics.get("tmr_model_loads_total", []) if labels.get("result") == "ok")
    evictions = sum(v for _, _, v in metrics.get("tmr_model_evictions_total", []))
    print(f"thrasher: {len(switches)} requests alternating {TWIN}/{LLM}, served by {sorted(set(switches))}; "
          f"loads by the router {loads:.0f}, evictions {evictions:.0f}")
    print(f"other client alone: p50 {pct(alone, 0.5):.2f} s, p99 {pct(alone, 0.99):.2f} s ({len(alone)} requests); "
          f"beside the thrasher: p50 {pct(beside, 0.5):.2f} s, p99 {pct(beside, 0.99):.2f} s ({len(beside)}) -> "
          f"p99 x{pct(beside, 0.99) / pct(alone, 0.99):.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
