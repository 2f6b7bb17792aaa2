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

from model_router.classifier import QueryClassifier
from model_router.classifier.training.data import Query, is_heldout, load_jsonl
from model_router.vocabulary import USE_CASES

HEADS = ("use_case", "language", "complexity")


def classify_local(artifact: Path | None) -> callable:
    clf = QueryClassifier(artifact) if artifact else QueryClassifier()
    return lambda q: clf.classify(q.text, q.attachments).to_dict()


def classify_remote(url: str) -> callable:
    from client import RouterClient

    client = RouterClient(url, "http" if not url.endswith(":8001") else "grpc")
    return lambda q: client.classify(q.text, q.attachments)


def report(rows: list[Query], preds: list[dict]) -> None:
    n = len(rows)
    for head in HEADS:
        labeled = [(r, p) for r, p in zip(rows, preds) if getattr(r, head)]
        if labeled:
            ok = sum(getattr(r, head) == p[head] for r, p in labeled)
            print(f"{head:<11} accuracy {ok / len(labeled):6.1%}  ({ok}/{len(labeled)})")
    for group in ("language", "use_case"):
        print(f"\nuse_case accuracy by {group}:")
        by: dict[str, list[bool]] = defaultdict(list)
        for r, p in zip(rows, preds):
            if r.use_case:
                by[getattr(r, group)].append(r.use_case == p["use_case"])
        for key in sorted(by):
            print(f"  {key:<11} {sum(by[key]) / len(by[key]):6.1%}  (n={len(by[key])})")
    confusion = Counter((r.use_case, p["use_case"]) for r, p in zip(rows, preds) if r.use_case)
    print("\nconfusion (rows: truth, columns: predicted)")
    print(" " * 12 + "".join(f"{u[:10]:>11}" for u in USE_CASES))
    for t in USE_CASES:
        print(f"{t:<12}" + "".join(f"{confusion[(t, p)]:>11}" for p in USE_CASES))
    print(f"\n{n} queries")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--predictions", type=Path, required=True)
    ap.add_argument("--url", help="classify through Triton at host:port instead of in-process")
    ap.add_argument("--heldout", action="store_true", help="only the dev set's held-out split")
    ap.add_argument("--errors", action="store_true", help="print each wrong use case")
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
