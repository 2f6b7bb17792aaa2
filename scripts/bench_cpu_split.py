"""Where the CPU goes per routed answer: one client thread asks tts_espeak N times in turn, and this
prints the CPU per answer of the client (this process) and of each server process (tritonserver and
each model's stubs, utime + stime from /proc), routed and direct, over gRPC and HTTP. The gRPC route
runs twice: on a stream opened per request (as RouterClient did before it kept streams) and through
RouterClient (its thread's stream kept open between requests).

    python scripts/bench_cpu_split.py [--requests 200]
"""
from __future__ import annotations

import argparse
import queue
import time
from typing import Callable

import tritonclient.grpc as grpcclient
from benchlib import server

from client import RouterClient
from client.wire import tensor
from launcher import TritonServer
from launcher.process import cpu_seconds
from model_router.contract import router as contract
from model_router.contract.media import SpeechRequest
from model_router.contract.router import RouterAnswer, RouterRequest
from model_router.serving.stubs import stub_pids

TEXT, OPTIONS = "Read this aloud: 'Good morning everyone.'", {"cache": "off", "use_case": "tts", "language": "en"}


def per_process(srv: TritonServer) -> dict[str, float]:
    """CPU seconds so far of tritonserver and of each model's stubs."""
    out: dict[str, float] = {}
    for name, pids in {"tritonserver": [srv.proc.pid], **stub_pids(srv.proc.pid)}.items():
        for pid in pids:
            try:
                out[name] = out.get(name, 0.0) + cpu_seconds(pid)
            except OSError:
                continue
    return out


def stream_per_request(url: str) -> Callable[[], None]:
    """A routed request on a gRPC stream of its own, opened and closed around it (on one channel), its
    answer decoded as RouterClient decodes it."""
    client = grpcclient.InferenceServerClient(url)
    request = RouterRequest.of(TEXT, OPTIONS).encode()

    def call() -> None:
        responses: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: responses.put((result, error)))
        client.async_stream_infer(contract.MODEL, [tensor(grpcclient, k, v) for k, v in request.items() if v is not None],
                                  enable_empty_final_response=True,
                                  outputs=[grpcclient.InferRequestedOutput(o) for o in contract.OUTPUTS])
        while True:
            result, error = responses.get(timeout=30)
            if error is not None:
                raise RuntimeError(error)
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                outputs = {o: result.as_numpy(o) for o in contract.OUTPUTS}
                RouterAnswer.decode({k: v for k, v in outputs.items() if v is not None}, True)
                break
        client.stop_stream()
    return call


def measure(name: str, call: Callable[[], None], srv: TritonServer, n: int) -> None:
    for _ in range(10):
        call()
    client0, server0, t0 = time.process_time(), per_process(srv), time.perf_counter()
    for _ in range(n):
        call()
    wall, client = time.perf_counter() - t0, time.process_time() - client0
    split = {k: (v - server0.get(k, 0.0)) * 1000 / n for k, v in per_process(srv).items()}
    parts = ", ".join(f"{k} {v:.2f}" for k, v in split.items() if v >= 0.05)
    print(f"{name:34s} {wall * 1000 / n:6.2f} ms/answer; CPU ms/answer: client {client * 1000 / n:.2f}, {parts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()
    speech = SpeechRequest("Good morning everyone.", "en")
    with server(None, ["query_classifier", "router", "tts_espeak"]) as (http_url, grpc_url, srv):
        grpc, http = RouterClient(grpc_url, "grpc"), RouterClient(http_url, "http")
        try:
            measure("routed gRPC, a stream per request", stream_per_request(grpc_url), srv, args.requests)
            measure("routed gRPC, RouterClient", lambda: grpc.route(TEXT, OPTIONS), srv, args.requests)
            measure("routed HTTP, RouterClient", lambda: http.route(TEXT, OPTIONS), srv, args.requests)
            measure("direct gRPC", lambda: grpc.infer("tts_espeak", speech.encode(), list(speech.outputs)), srv,
                    args.requests)
            measure("direct HTTP", lambda: http.infer("tts_espeak", speech.encode(), list(speech.outputs)), srv,
                    args.requests)
        finally:
            grpc.close(), http.close()


if __name__ == "__main__":
    main()
