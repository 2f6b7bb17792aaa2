"""Time to heal: SIGKILL the LLM's stub, then time until a request naming it (no fallback) is answered
again by the same tritonserver, beside how long the model takes to load. Target: load time + 5 s.

    python scripts/bench_heal.py [--runs 3]
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import time

from benchlib import server

from client import RouterClient
from client.api import InferenceServerException
from model_router.serving.stubs import stub_pids

LLM = "smollm2_135m_instruct"
ASK = {"model": LLM, "allow_fallback": False, "sampling_parameters": {"max_tokens": 8, "temperature": 0}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    # Residency off: this measures healing, not the anti-thrashing rule; no backoff between the runs' deaths.
    with server(None, ["query_classifier", "router", LLM],
                env={"TMR_RECOVERY_BACKOFF_S": "0", "TMR_MIN_RESIDENCY_S": "0"}) as (http_url, grpc_url, srv):
        admin, client = RouterClient(http_url), RouterClient(grpc_url, "grpc", timeout=300)
        loads, heals = [], []
        for _ in range(args.runs):
            admin.unload(LLM)
            while admin.is_ready(LLM):
                time.sleep(0.1)
            t0 = time.perf_counter()
            admin.load(LLM)
            loads.append(time.perf_counter() - t0)
            while not admin.deep_health()["models"][LLM]["healthy"]:  # the router has seen the load
                time.sleep(0.1)
            client.route("Hi", ASK)
            os.kill(stub_pids(srv.proc.pid)[LLM][0], signal.SIGKILL)
            t0 = time.perf_counter()
            while True:
                try:
                    if "Paris" in client.route("What is the capital of France?", ASK).text:
                        break
                except InferenceServerException:  # recovering: the router says so at once
                    time.sleep(0.25)
            heals.append(time.perf_counter() - t0)
            assert srv.proc.poll() is None
    load, heal = statistics.median(loads), statistics.median(heals)
    print(f"load (model control) median {load:.1f} s; heal (kill -> answered by the same model) median {heal:.1f} s, "
          f"runs {', '.join(f'{h:.1f}' for h in heals)}; heal - load = {heal - load:+.1f} s (target <= +5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
