"""perf_analyzer on the query_classifier model: p50/p99 at concurrency 1 and throughput at 4.

By default queries are drawn from our written corpus, with up to four joined to reach 300 characters,
so that the set spans short and long queries in all ten languages (none over 300 characters). The
model is sure of its own training text, so few of these take the embedding's second opinion;
`--data FILE.jsonl` benchmarks labeled queries it never saw instead (tests/data/queries_unseen.jsonl),
where about a third do. Each run prints that share.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from benchlib import perf_analyzer, server

from model_router.classifier import QueryClassifier
from model_router.classifier.training.data import load_corpus, load_jsonl

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


def load_queries(path: Path) -> list[tuple[str, str]]:
    return [(r.text, r.attachments[0] if r.attachments else "") for r in load_jsonl(path)]


def cascade_share(queries: list[tuple[str, str]]) -> float:
    """Share of the queries on which the fast head is unsure and the e5 embedding is computed."""
    clf = QueryClassifier(use_embeddings=False)
    return sum(clf._head("use_case", t, (a,) if a else (), shape=False).max() < clf.cascade_below
               for t, a in queries) / len(queries)


def write_input(path: Path = INPUT, queries: list[tuple[str, str]] | None = None) -> Path:
    """perf_analyzer's --input-data file for `queries` (default: drawn from our corpus)."""
    data = [{"text": {"content": [t], "shape": [1]}, "attachments": {"content": [a], "shape": [1]}}
            for t, a in (queries if queries is not None else make_queries())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"data": data}, ensure_ascii=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--data", type=Path, help="labeled JSONL to draw the queries from (default: our corpus)")
    args = ap.parse_args()
    queries = load_queries(args.data) if args.data else make_queries()
    lengths = sorted(len(t) for t, _ in queries)
    print(f"{len(lengths)} queries, {lengths[0]}-{lengths[-1]} characters (median {lengths[len(lengths) // 2]}); "
          f"{cascade_share(queries):.0%} take the embedding's second opinion")
    with tempfile.TemporaryDirectory() as tmp, server(args.url, ["query_classifier"]) as (http, grpc, _):
        data = write_input(Path(tmp) / "classifier_input.json", queries)
        for protocol, url in (("http", http), ("grpc", grpc)):
            c1 = perf_analyzer("query_classifier", url, 1, data, protocol)
            c4 = perf_analyzer("query_classifier", url, 4, data, protocol)
            print(f"{protocol}: concurrency 1: p50 {c1['p50_ms']:.2f} ms, p99 {c1['p99_ms']:.2f} ms, "
                  f"{c1['throughput']:.0f} infer/s | concurrency 4: p50 {c4['p50_ms']:.2f} ms, "
                  f"p99 {c4['p99_ms']:.2f} ms, {c4['throughput']:.0f} infer/s")


if __name__ == "__main__":
    main()
