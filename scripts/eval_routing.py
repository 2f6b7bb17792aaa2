"""Where queries would go: classifier + registry + policy in process, no server, with a fresh live
state (nothing loaded, everything fits). Writes one JSON line per query (id, use_case, language,
complexity, model, expected_ms, cost) and prints the models chosen by use case x complexity, and the
expected latency and cost against always taking the chain's primary.

    python scripts/eval_routing.py --data IN.jsonl --profile gpu [--prefer balanced] --out OUT.jsonl
"""
from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from pathlib import Path

from model_router.classifier import QueryClassifier
from model_router.classifier.training.data import load_jsonl
from model_router.registry import load_registry
from model_router.routing.policy import PREFERENCES, LiveState, Query, rank
from model_router.routing.decision import effective_use_case
from model_router.vocabulary import COMPLEXITIES

FRESH = LiveState(is_loaded=lambda m: False, blocker=lambda m, forced: "", cooling_s=lambda m: 0.0,
                  recent_failures=lambda m: 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--profile", choices=["cpu", "gpu"], default="gpu")
    ap.add_argument("--prefer", choices=sorted(PREFERENCES), default="balanced")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    registry, clf = load_registry(), QueryClassifier()
    rows = []
    for q in load_jsonl(args.data):
        c = clf.classify(q.text, q.attachments)
        use_case, _ = effective_use_case(c, None, tuple(q.attachments))
        query = Query(use_case, c.language, c.complexity, args.prefer, attachments=tuple(q.attachments))
        ranking = rank(registry, args.profile, query, FRESH)
        spec = registry.model(ranking.candidates[0].model)
        primary = registry.model(registry.chain(args.profile, use_case)[0])
        rows.append({"id": q.id, "use_case": use_case, "language": c.language, "complexity": c.complexity,
                     "model": spec.name, "expected_ms": spec.latency_ms, "cost": spec.cost,
                     "primary": primary.name, "primary_ms": primary.latency_ms, "primary_cost": primary.cost,
                     "decided_by": ranking.decided_by})
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)} queries, profile {args.profile}, prefer {args.prefer}\n")
    table = Counter((r["use_case"], r["complexity"], r["model"]) for r in rows)
    print(f"{'use case':<11} " + " ".join(f"{cx:<38}" for cx in COMPLEXITIES))
    for use_case in sorted({r["use_case"] for r in rows}):
        cells = [", ".join(f"{m} {n}" for (u, cx, m), n in sorted(table.items()) if u == use_case and cx == level) or "-"
                 for level in COMPLEXITIES]
        print(f"{use_case:<11} " + " ".join(f"{cell:<38}" for cell in cells))
    mean = lambda key: statistics.fmean(r[key] for r in rows)  # noqa: E731
    print(f"\nexpected latency: {mean('expected_ms'):.0f} ms vs {mean('primary_ms'):.0f} ms always taking the primary"
          f" (x{mean('expected_ms') / mean('primary_ms'):.2f}); cost per output token: {mean('cost'):.2f} vs "
          f"{mean('primary_cost'):.2f} (x{mean('cost') / mean('primary_cost'):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
