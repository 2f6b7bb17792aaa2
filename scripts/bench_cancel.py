"""What abandoned requests cost the next one: a request's latency idle, then right after three
streamed 400-token answers were abandoned after their first piece (gRPC, through the router).

    python scripts/bench_cancel.py [--url host:http_port] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import queue
import statistics
import threading
import time

import numpy as np
import tritonclient.grpc as grpcclient
from benchlib import server

from client import RouterClient

QUESTION = "What is the capital of France?"
SHORT = {"use_case": "agent", "sampling_parameters": {"max_tokens": 32, "temperature": 0}}
LONG = {"use_case": "agent", "stream": True,
        "sampling_parameters": {"max_tokens": 400, "temperature": 0, "ignore_eos": True}}


def abandon_after_first_piece(url: str) -> None:
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put(error))
    inputs = []
    for name, value in (("text", "Write a very long story about a dragon."), ("options", json.dumps(LONG))):
        inputs.append(grpcclient.InferInput(name, [1], "BYTES"))
        inputs[-1].set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    client.async_stream_infer("router", inputs)
    results.get(timeout=300)  # the first piece
    client.stop_stream(cancel_requests=True)
    client.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with server(args.url, ["smollm2_135m_instruct", "query_classifier", "router"]) as (_, grpc_url, _srv):
        client = RouterClient(grpc_url, "grpc")

        def timed() -> float:
            t0 = time.perf_counter()
            assert "Paris" in client.route(QUESTION, SHORT).text
            return time.perf_counter() - t0

        timed()  # warm up
        idle = statistics.median(timed() for _ in range(args.runs))
        after = []
        for _ in range(args.runs):
            threads = [threading.Thread(target=abandon_after_first_piece, args=(grpc_url,)) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            after.append(timed())
            time.sleep(1.0)
    print(f"idle {idle:.2f} s; right after 3 abandoned 400-token streams: median {statistics.median(after):.2f} s, "
          f"max {max(after):.2f} s -> x{statistics.median(after) / idle:.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
