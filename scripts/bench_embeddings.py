"""The embedding model alone (`multilingual_e5_small` on a fresh tritonserver, called over gRPC as the
router calls it): its model-control load, its stub's memory (PSS from /proc) after serving, the latency
of one short text (p50/p99), of a full batch of short texts and of texts near the token limit.

    python scripts/bench_embeddings.py [--runs 200]
"""
from __future__ import annotations

import argparse
import statistics
import time

import tritonclient.grpc as grpcclient
from tritonclient.utils import np_to_triton_dtype

from benchlib import cpu_name, server
from model_router.contract.embedding import MAX_INPUTS, EmbedRequest
from model_router.serving.stubs import host_mb, stub_pids

MODEL = "multilingual_e5_small"
SHORT = "How do I reset my password?"
LONG = "The river flooded the village last spring and the farmers lost their crops. " * 29  # ~500 tokens


def embed(client: grpcclient.InferenceServerClient, texts: list[str]) -> float:
    """Seconds for one request of `texts`."""
    arr = EmbedRequest(tuple(texts)).encode()["text"]
    tensor = grpcclient.InferInput("text", list(arr.shape), np_to_triton_dtype(arr.dtype))
    tensor.set_data_from_numpy(arr)
    started = time.perf_counter()
    client.infer(MODEL, [tensor])
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200, help="requests of one short text")
    args = ap.parse_args()
    with server(None, []) as (_, grpc_url, srv):
        client = grpcclient.InferenceServerClient(grpc_url)
        started = time.perf_counter()
        client.load_model(MODEL)
        load_s = time.perf_counter() - started
        embed(client, [SHORT])  # warm
        one = sorted(embed(client, [SHORT]) for _ in range(args.runs))
        batch = statistics.median(embed(client, [SHORT] * MAX_INPUTS) for _ in range(5))
        long = statistics.median(embed(client, [LONG] * 8) for _ in range(3))
        pss = host_mb(stub_pids(srv.proc.pid).get(MODEL, []))
        client.close()
    print(f"{MODEL} on {cpu_name()}")
    print(f"load (model control): {load_s:.2f} s; stub PSS after serving: {pss:.0f} MB")
    print(f"one short text: p50 {one[len(one) // 2] * 1000:.1f} ms, p99 {one[int(len(one) * 0.99)] * 1000:.1f} ms "
          f"({args.runs} requests)")
    print(f"{MAX_INPUTS} short texts in one request: {batch:.2f} s; 8 texts of ~500 tokens: {long:.2f} s")


if __name__ == "__main__":
    main()
