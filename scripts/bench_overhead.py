"""The router's own cost, each number beside its baseline, from one run on one machine.

1. Overhead: a 1-token answer through the router minus the same answer from the LLM directly,
   as the median of interleaved pairs (routed, direct, routed, ...), over HTTP (Triton's generate
   route) and gRPC (a stream). The response cache is off for these requests (options.cache): a hit
   would skip the work being measured.
2. Throughput on a trivial target: routed tts_espeak requests/s against calling tts_espeak directly,
   with N client threads each (gRPC).
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time

from benchlib import server

from client import RouterClient
from model_router.contract.media import SpeechRequest

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
        for _ in range(pairs):
            r, d = routed_1(client, stream), direct_1(client, stream)
            routed.append(r), direct.append(d), diffs.append(r - d)
        out[protocol] = {"routed_p50_ms": statistics.median(routed) * 1000,
                         "direct_p50_ms": statistics.median(direct) * 1000,
                         "overhead_median_ms": statistics.median(diffs) * 1000}
    return out


def rate(call, threads: int, seconds: float) -> float:
    done, stop = [0] * threads, time.monotonic() + seconds

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            call()
            done[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(done) / seconds


def throughput(grpc_url: str, threads: int, seconds: float) -> dict[str, float]:
    client = RouterClient(grpc_url, "grpc")
    speech = SpeechRequest("Good morning everyone.", "en")
    routed = lambda: client.route("Read this aloud: 'Good morning everyone.'",  # noqa: E731
                                  {**NO_CACHE, "use_case": "tts", "language": "en"})
    direct = lambda: client.infer(TTS, speech.encode(), list(speech.outputs))  # noqa: E731
    for _ in range(3):
        routed(), direct()
    r, d = rate(routed, threads, seconds), rate(direct, threads, seconds)
    return {"routed_rps": r, "direct_rps": d, "ratio": r / d}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    with server(args.url, ["query_classifier", "router", LLM, TTS]) as (http_url, grpc_url, _srv):
        for protocol, row in overhead(http_url, grpc_url, args.pairs).items():
            print(f"overhead {protocol}: routed p50 {row['routed_p50_ms']:.1f} ms, direct p50 "
                  f"{row['direct_p50_ms']:.1f} ms, routed - direct (median of {args.pairs} pairs) "
                  f"{row['overhead_median_ms']:.1f} ms (target <= 6)")
        t = throughput(grpc_url, args.threads, args.seconds)
        print(f"tts_espeak with {args.threads} threads: routed {t['routed_rps']:.1f}/s, direct {t['direct_rps']:.1f}/s,"
              f" x{t['ratio']:.2f} (target >= 0.45)")


if __name__ == "__main__":
    main()
