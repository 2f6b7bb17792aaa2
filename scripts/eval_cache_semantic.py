#!/usr/bin/env python3
"""Choose the semantic cache's threshold on tests/data/cache_pairs.jsonl and print precision/recall.

Each pair is (a cached query, a new query, whether the new one may get the cached answer). A pair is
a predicted hit when the e5 cosine reaches the threshold and no guard calls it a near miss
(model_router.cache.semantic). The chosen threshold: the highest one at the best precision that keeps
98% of the best recall at that precision (a margin above the lowest, for queries the set lacks).
Usage: .venv/bin/python scripts/eval_cache_semantic.py [--json]
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from model_router import REPO_ROOT
from model_router.cache.semantic import SEMANTIC_THRESHOLD, e5_embedder, near_miss

PAIRS = REPO_ROOT / "tests" / "data" / "cache_pairs.jsonl"
THRESHOLDS = [round(t, 3) for t in np.arange(0.85, 1.0, 0.005)]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score(pairs: list[dict], sims: list[float], guards: list[str], threshold: float) -> dict:
    hits = [s >= threshold and not g for s, g in zip(sims, guards)]
    tp = sum(h and p["match"] for h, p in zip(hits, pairs))
    fp = sum(h and not p["match"] for h, p in zip(hits, pairs))
    positives = sum(p["match"] for p in pairs)
    return {"threshold": threshold, "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / positives if positives else 0.0, "true_hits": tp, "false_hits": fp,
            "false_by_kind": dict(Counter(p["kind"] for h, p in zip(hits, pairs) if h and not p["match"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--json", action="store_true", help="print the chosen row as JSON only")
    args = parser.parse_args()
    pairs = load(args.pairs)
    embed = e5_embedder()
    sims = [float(embed(p["a"]) @ embed(p["b"])) for p in pairs]
    guards = [near_miss(p["a"], p["b"]) for p in pairs]
    rows = [score(pairs, sims, guards, t) for t in THRESHOLDS]
    top = max(r["precision"] for r in rows)
    most = max(r["recall"] for r in rows if r["precision"] == top)
    best = max((r for r in rows if r["precision"] == top and r["recall"] >= 0.98 * most),
               key=lambda r: r["threshold"])
    embedding_only = score(pairs, sims, [""] * len(pairs), best["threshold"])
    if args.json:
        print(json.dumps({"chosen": best, "embedding_only": embedding_only, "pairs": len(pairs)}))
        return
    kinds = Counter(p["kind"] for p in pairs)
    print(f"{len(pairs)} pairs: {dict(kinds)}")
    print("guards that stopped a pair:", dict(Counter(g for g in guards if g)))
    print(f"{'threshold':>9} {'precision':>9} {'recall':>7} {'hits':>5} {'false':>5}")
    for r in rows:
        print(f"{r['threshold']:9.3f} {r['precision']:9.3f} {r['recall']:7.3f} {r['true_hits']:5d} "
              f"{r['false_hits']:5d} {r['false_by_kind'] or ''}")
    print(f"chosen threshold {best['threshold']}: precision {best['precision']:.3f}, recall {best['recall']:.3f} "
          f"(the embedding alone at that threshold: precision {embedding_only['precision']:.3f}, "
          f"recall {embedding_only['recall']:.3f}); in the code: SEMANTIC_THRESHOLD = {SEMANTIC_THRESHOLD}")
    for p, s, g in zip(pairs, sims, guards):
        if s >= best["threshold"] and not g and not p["match"]:
            print(f"  false hit {s:.3f} [{p['kind']}/{p['lang']}] {p['a']} | {p['b']}")


if __name__ == "__main__":
    main()
