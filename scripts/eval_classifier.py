"""Evaluate the query classifier on a labeled JSONL file and write its predictions.

In-process by default (the same code the Triton model runs); `--url host:port` classifies
through the running `query_classifier` Triton model instead. `--heldout` keeps only the dev
set's held-out split (the part never trained on).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from model_router.classifier import QueryClassifier
from model_router.classifier.training.data import Query, is_heldout, load_jsonl
from model_router.classifier.training.metrics import expected_calibration_error, low_high_rate
from model_router.vocabulary import COMPLEXITIES, USE_CASES

HEADS = ("use_case", "language", "complexity")


def classify_local(artifact: Path | None) -> Callable[[Query], dict]:
    clf = QueryClassifier(artifact) if artifact else QueryClassifier()
    return lambda q: clf.classify(q.text, q.attachments).to_dict()


def classify_remote(url: str) -> Callable[[Query], dict]:
    from client import RouterClient

    client = RouterClient(url, "http" if not url.endswith(":8001") else "grpc")
    return lambda q: client.classify(q.text, q.attachments)


def accuracy(rows: list[Query], preds: list[dict], head: str) -> tuple[int, int]:
    labeled = [(r, p) for r, p in zip(rows, preds) if getattr(r, head)]
    return sum(getattr(r, head) == p[head] for r, p in labeled), len(labeled)


def _matrix(pairs: Counter, labels: tuple[str, ...]) -> None:
    print(" " * 12 + "".join(f"{u[:10]:>11}" for u in labels))
    for t in labels:
        print(f"{t:<12}" + "".join(f"{pairs[(t, p)]:>11}" for p in labels))


def report(rows: list[Query], preds: list[dict]) -> None:
    for head in HEADS:
        ok, n = accuracy(rows, preds, head)
        if n:
            print(f"{head:<11} accuracy {ok / n:6.1%}  ({ok}/{n})")
    cx = [(r.complexity, p["complexity"]) for r, p in zip(rows, preds) if r.complexity]
    print(f"complexity low<->high confusions {low_high_rate(*zip(*cx)) if cx else 0:.1%}")
    for head in ("use_case", "complexity"):
        labeled = [(r, p) for r, p in zip(rows, preds) if getattr(r, head)]
        if labeled:
            err = expected_calibration_error([p["confidence"][head] for _, p in labeled],
                                             [getattr(r, head) == p[head] for r, p in labeled])
            print(f"{head} confidence: expected calibration error {err:.3f}")
    print("\naccuracy by language:   use_case  language  complexity")
    by: dict[str, list[tuple[Query, dict]]] = defaultdict(list)
    for r, p in zip(rows, preds):
        by[r.language].append((r, p))
    for key in sorted(by):
        cells = [accuracy([r for r, _ in by[key]], [p for _, p in by[key]], h) for h in HEADS]
        print(f"  {key:<11}" + "".join(f"{ok / max(n, 1):>10.1%}" for ok, n in cells) + f"  (n={len(by[key])})")
    print("\nuse_case accuracy by use_case:")
    by_uc: dict[str, list[bool]] = defaultdict(list)
    for r, p in zip(rows, preds):
        if r.use_case:
            by_uc[r.use_case].append(r.use_case == p["use_case"])
    for key in sorted(by_uc):
        print(f"  {key:<11} {sum(by_uc[key]) / len(by_uc[key]):6.1%}  (n={len(by_uc[key])})")
    print("\nuse case confusion (rows: truth, columns: predicted)")
    _matrix(Counter((r.use_case, p["use_case"]) for r, p in zip(rows, preds) if r.use_case), USE_CASES)
    print("\ncomplexity confusion (rows: truth, columns: predicted)")
    _matrix(Counter((r.complexity, p["complexity"]) for r, p in zip(rows, preds) if r.complexity), COMPLEXITIES)
    print(f"\n{len(rows)} queries")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--predictions", type=Path, required=True)
    ap.add_argument("--url", help="classify through Triton at host:port instead of in-process")
    ap.add_argument("--heldout", action="store_true", help="only the dev set's held-out split")
    ap.add_argument("--errors", action="store_true", help="print each wrong use case or language")
    ap.add_argument("--artifact", type=Path, help="classifier artifact (default: the shipped one)")
    args = ap.parse_args()
    rows = load_jsonl(args.data)
    if args.heldout:
        rows = [r for r in rows if is_heldout(r.id)]
    classify = classify_remote(args.url) if args.url else classify_local(args.artifact)
    started = time.perf_counter()
    preds = [classify(r) for r in rows]
    elapsed = time.perf_counter() - started
    with args.predictions.open("w", encoding="utf-8") as out:
        for r, p in zip(rows, preds):
            out.write(json.dumps({"id": r.id, **{k: p[k] for k in ("use_case", "language", "complexity", "modality")},
                                  "confidence": p["confidence"]}, ensure_ascii=False) + "\n")
    if any(r.use_case for r in rows):
        report(rows, preds)
    if args.errors:
        for r, p in zip(rows, preds):
            if r.use_case and r.use_case != p["use_case"] or r.language and r.language != p["language"]:
                print(f"  {r.id} {r.use_case}->{p['use_case']} {r.language}->{p['language']} {r.attachments} {r.text[:90]}")
    print(f"{len(rows) / elapsed:.0f} queries/s ({1000 * elapsed / max(len(rows), 1):.2f} ms each)")


if __name__ == "__main__":
    main()
