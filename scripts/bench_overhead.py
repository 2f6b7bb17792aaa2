"""The router's own cost, each number beside its baseline, from one run on one machine.

1. Overhead: a 1-token answer through the router minus the same answer from the LLM directly,
   as the median of interleaved pairs (routed, direct, routed, ...), over HTTP (Triton's generate
   route) and gRPC (a stream). The response cache is off for these requests (options.cache): a hit
   would skip the work being measured.
2. Throughput on a trivial target: routed tts_espeak requests/s against calling tts_espeak directly,
   with N client threads each (gRPC, then HTTP), and the server's CPU per answer for each (the
   client shares the cores, so the ratio of answers/s also carries the client's cost).
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any, Callable

from benchlib import server

from client import RouterClient
from launcher import TritonServer
from launcher.process import cpu_seconds
from model_router.contract.media import SpeechRequest
from model_router.serving.stubs import stub_pids

LLM, TTS = "smollm2_135m_instruct", "tts_espeak"
ONE_TOKEN = {"max_tokens": 1, "temperature": 0}
NO_CACHE = {"cache": "off"}


def routed_1(client: RouterClient, stream: bool) -> float:
    t0 = time.perf_counter()
    client.route("What is the capital of France?", {**NO_CACHE, "stream": stream, "model": LLM,
                                                   "sampling_parameters": ONE_TOKEN})
    return time.perf_counter() - t0


def direct_1(client: RouterClient, stream: bool) -> float:
    t0 = time.perf_counter()
    # The router sends the LLM the conversation (messages); a plain prompt is the same tokens here.
    "".join(client.stream(LLM, "What is the capital of France?", ONE_TOKEN, stream=stream))
    return time.perf_counter() - t0


def overhead(http_url: str, grpc_url: str, pairs: int) -> dict[str, dict[str, float]]:
    out = {}
    for protocol, url in (("http", http_url), ("grpc", grpc_url)):
        client = RouterClient(url, protocol)
        stream = protocol == "grpc"
        for _ in range(5):  # warm both paths
            routed_1(client, stream), direct_1(client, stream)
        diffs, routed, direct = [], [], []
        for i in range(pairs):  # the order alternates, so that neither side is always the one after the other
            if i % 2:
                d, r = direct_1(client, stream), routed_1(client, stream)
            else:
                r, d = routed_1(client, stream), direct_1(client, stream)
            routed.append(r), direct.append(d), diffs.append(r - d)
        q1, _, q3 = statistics.quantiles(diffs, n=4)
        out[protocol] = {"routed_p50_ms": statistics.median(routed) * 1000,
                         "direct_p50_ms": statistics.median(direct) * 1000,
                         "overhead_median_ms": statistics.median(diffs) * 1000,
                         "overhead_iqr_ms": (q1 * 1000, q3 * 1000)}
    return out


def rate(call: Callable[[RouterClient], Any], url: str, protocol: str, threads: int, seconds: float) -> float:
    """Answers per second from `threads` threads, each with its own client (tritonclient's HTTP
    client is not shared across threads)."""
    done, stop = [0] * threads, time.monotonic() + seconds

    def worker(i: int) -> None:
        client = RouterClient(url, protocol)
        call(client)  # its connection made before the clock counts
        while time.monotonic() < stop:
            call(client)
            done[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / seconds


def server_cpu_s(srv: TritonServer | None) -> float:
    """CPU seconds of tritonserver and its stubs so far (0 for a server this run did not start)."""
    if srv is None:
        return 0.0
    total = 0.0
    for pid in [srv.proc.pid, *(p for pids in stub_pids(srv.proc.pid).values() for p in pids)]:
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def throughput(urls: dict[str, str], srv: TritonServer | None, threads: int,
               seconds: float) -> dict[str, dict[str, float]]:
    """Routed against direct tts_espeak per protocol: answers/s, and the server's CPU per answer
    (tritonserver and its stubs, read from /proc: the router's own cost without the client's)."""
    speech = SpeechRequest("Good morning everyone.", "en")
    calls = {"routed": lambda c: c.route("Read this aloud: 'Good morning everyone.'",
                                         {**NO_CACHE, "use_case": "tts", "language": "en"}),
             "direct": lambda c: c.infer(TTS, speech.encode(), list(speech.outputs))}
    out: dict[str, dict[str, float]] = {}
    for protocol, url in urls.items():
        row: dict[str, float] = {}
        for name, call in calls.items():
            cpu0 = server_cpu_s(srv)
            rps = rate(call, url, protocol, threads, seconds)
            row[f"{name}_rps"] = rps
            row[f"{name}_cpu_ms"] = (server_cpu_s(srv) - cpu0) * 1000 / max(rps * seconds, 1)
        row["ratio"] = row["routed_rps"] / row["direct_rps"]
        out[protocol] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with server(args.url, ["query_classifier", "router", LLM, TTS]) as (http_url, grpc_url, srv):
        for protocol, row in overhead(http_url, grpc_url, args.pairs).items():
            print(f"overhead {protocol}: routed p50 {row['routed_p50_ms']:.1f} ms, direct p50 "
                  f"{row['direct_p50_ms']:.1f} ms, routed - direct (median of {args.pairs} pairs) "
                  f"{row['overhead_median_ms']:.1f} ms (target <= 6; quartiles of the pairs "
                  f"{row['overhead_iqr_ms'][0]:.1f} / {row['overhead_iqr_ms'][1]:.1f} ms)")
        for protocol, t in throughput({"grpc": grpc_url, "http": http_url}, srv, args.threads, args.seconds).items():
            print(f"tts_espeak {protocol}, {args.threads} threads: routed {t['routed_rps']:.1f}/s, direct "
                  f"{t['direct_rps']:.1f}/s, x{t['ratio']:.2f} (target >= 0.45); server CPU per answer routed "
                  f"{t['routed_cpu_ms']:.1f} ms, direct {t['direct_cpu_ms']:.1f} ms")


if __name__ == "__main__":
    main()
