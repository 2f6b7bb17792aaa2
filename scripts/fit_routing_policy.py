"""Fit the learned routing policy from a deployment's own traffic: the decision log's decisions joined
with their feedback (POST /v1/feedback), read from the log file or Redis, optionally with the routing
evaluation's graded answers on its learning split. Label variants only (the log keeps no query text).

    python scripts/fit_routing_policy.py --log results/decisions.jsonl
    python scripts/fit_routing_policy.py --log redis://HOST:6379/0 --answers results/routing_value --install

The margins and costs are kept from the policy it starts from (--base, default the shipped one), where
the routing evaluation fitted them; --install writes the result where the router reads it.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from model_router.evaluation.fit import Outcome, fit_policy, outcomes_from_log
from model_router.registry import load_registry
from model_router.routing import decision_log
from model_router.routing.learned import ARTIFACT, LABELS, LearnedPolicy

REPO = Path(__file__).resolve().parent.parent


def evaluation_outcomes(folder: Path) -> list[Outcome]:
    """The routing evaluation's graded answers on its learning split, as outcomes."""
    from model_router.classifier import QueryClassifier
    from model_router.evaluation.answers import AnswerStore
    from model_router.evaluation.policies import Graded, as_routed
    from model_router.evaluation.tasks import load_tasks

    tasks = [t for t in load_tasks() if t.split == "learn"]
    store = AnswerStore(folder / "answers.jsonl")
    models = sorted({m for (_, m) in store.records})
    graded = Graded(tasks, models, store)
    queries = as_routed(tasks, QueryClassifier())
    # Every answer on disk counts, whether or not every model answered its task.
    return [Outcome(m, queries[t].learned(), float(right)) for (t, m), right in graded.right.items()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", action="append", default=[], help="a decision log: a JSONL path or a redis:// URL")
    ap.add_argument("--answers", type=Path, default=None, help="a routing evaluation's output folder")
    ap.add_argument("--variant", choices=sorted(LABELS), default=None, help="default: the base policy's, else labels")
    ap.add_argument("--base", type=Path, default=ARTIFACT)
    ap.add_argument("--out", type=Path, default=REPO / "results" / "learned_policy.json")
    ap.add_argument("--install", action="store_true", help=f"write it to {ARTIFACT.relative_to(REPO)}")
    args = ap.parse_args()
    if not args.log and args.answers is None:
        ap.error("give --log and/or --answers")
    outcomes = [o for source in args.log for o in outcomes_from_log(decision_log.read(source))]
    if args.answers is not None:
        outcomes += evaluation_outcomes(args.answers)
    if not outcomes:
        print("no graded decisions: nothing to fit")
        return 1
    base = LearnedPolicy.load(args.base) if args.base.is_file() else None
    variant = args.variant or (base.variant if base and base.variant in LABELS else "labels")
    registry = load_registry()
    priors = {m: registry.model(m).quality for m in {o.model for o in outcomes} if m in registry.models}
    policy = fit_policy(outcomes, variant, priors, base.cost if base else None, base.margins if base else None,
                        {"outcomes": len(outcomes), "logs": args.log, "answers": str(args.answers or "")})
    out = ARTIFACT if args.install else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(policy.to_json() + "\n")
    per_model = Counter(o.model for o in outcomes)
    print(f"fitted {variant} on {len(outcomes)} outcomes ({dict(per_model)}) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
