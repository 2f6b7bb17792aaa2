"""perf_analyzer on the query_classifier model: p50/p99 at concurrency 1 and throughput at 4.

Queries are drawn from our written corpus, with up to four joined to reach 300 characters, so
that the set spans short and long queries in all ten languages (none over 300 characters).
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from benchlib import perf_analyzer, server

from model_router.classifier.training.data import load_corpus

INPUT = Path(__file__).resolve().parent.parent / "loadtests" / "perf" / "classifier_input.json"


def make_queries(n: int = 300, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = load_corpus()
    by_lang: dict[str, list] = {}
    for r in rows:
        by_lang.setdefault(r.language, []).append(r)
    out = []
    while len(out) < n:
        r = rng.choice(rows)
        text = r.text
        for _ in range(rng.choice((0, 0, 1, 2, 3))):  # longer queries: more sentences of the same language
            text = f"{text} {rng.choice(by_lang[r.language]).text}"
        if len(text) <= 300:
            out.append((text, r.attachments[0] if r.attachments else ""))
    return out


def write_input(path: Path = INPUT) -> Path:
    data = [{"text": {"content": [t], "shape": [1]}, "attachments": {"content": [a], "shape": [1]}}
            for t, a in make_queries()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": data}, ensure_ascii=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    args = ap.parse_args()
    data = write_input()
    lengths = [len(t) for t, _ in make_queries()]
    print(f"{len(lengths)} queries, {min(lengths)}-{max(lengths)} characters (median {sorted(lengths)[len(lengths) // 2]})")
    with server(args.url, ["query_classifier"]) as (http, grpc, _):
        for protocol, url in (("http", http), ("grpc", grpc)):
            c1 = perf_analyzer("query_classifier", url, 1, data, protocol)
            c4 = perf_analyzer("query_classifier", url, 4, data, protocol)
            print(f"{protocol}: concurrency 1: p50 {c1['p50_ms']:.2f} ms, p99 {c1['p99_ms']:.2f} ms, "
                  f"{c1['throughput']:.0f} infer/s | concurrency 4: p50 {c4['p50_ms']:.2f} ms, "
                  f"p99 {c4['p99_ms']:.2f} ms, {c4['throughput']:.0f} infer/s")


if __name__ == "__main__":
    main()
