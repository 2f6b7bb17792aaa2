"""Does routing pay? Every single model answers every task of the routing-evaluation set once through
the real server (one request at a time, greedy; answers kept on disk, so a rerun resumes), then every
policy is scored from those answers: each model alone, random mixes, the oracle, and the router's
policies (prefer cost / balanced / quality; hand-set and learned), its decisions computed in process;
a live run of the router on a sample of the held-out split checks that live and computed agree.

    bash scripts/run.sh                          # the README run command, in another terminal
    python scripts/eval_routing_value.py         # everything: 406 tasks x each text model
    python scripts/eval_routing_value.py --limit 24 --live 6   # a quick run
    python scripts/eval_routing_value.py --score-only          # score what is on disk, no server

Writes under --out (default results/routing_value/): answers.jsonl, live.jsonl, report.json,
cost_quality.png and learned_policy.json, the variant kept, fitted on the learning split; the router
reads model_router/routing/artifacts/learned_policy.json (TMR_LEARNED_POLICY): copy it there to ship it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from benchlib import cpu_name
from client.api import RouterClient
from model_router.evaluation.answers import AnswerStore
from model_router.evaluation.collect import Collector, tritonserver_pid
from model_router.evaluation.report import evaluate
from model_router.evaluation.tasks import Task, load_tasks, sample
from model_router.registry import load_registry

REPO = Path(__file__).resolve().parent.parent
LIVE_TASKS = 40
DEFAULT_OUT = REPO / "results" / "routing_value"


def text_models(profile: str = "cpu") -> list[str]:
    """The text models the agent chain offers on this profile, in chain order, without copies of another
    model in another number format (the same answers at more cost: name one with --models)."""
    registry = load_registry()
    return [m for m in registry.chain(profile, "agent") if not registry.model(m).copy_of]


def ask_all(collector: Collector, store: AnswerStore, tasks: list[Task], models: list[str]) -> None:
    """Every model answers every task it has not answered yet (as asked now), task by task: a run cut
    short leaves whole rows (every model on the same tasks), in an order that mixes kinds and splits."""
    missing = [(t, m) for t in tasks for m in models if not store.has(t, m)]
    if not missing:
        return
    print(f"{len(missing)} answers to ask ({len(models)} models)", flush=True)
    collector.warm()
    started = time.monotonic()
    for n, (task, model) in enumerate(missing, 1):
        # The tasks are the agent use case's: the model answers whatever the classifier would say.
        store.add(collector.ask(task, model, model=model, allow_fallback=False, use_case="agent"))
        if n % 30 == 0 or n == len(missing):
            print(f"  {n}/{len(missing)} in {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="localhost:8001", help="Triton's gRPC endpoint (host:port)")
    ap.add_argument("--server-pid", type=int, default=None, help="tritonserver's pid (default: found by --url's port)")
    ap.add_argument("--limit", type=int, default=None, help="only this many tasks (every kind and split still seen)")
    ap.add_argument("--models", nargs="*", default=None, help="default: the CPU agent chain's text models")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--live", type=int, default=None,
                    help="held-out tasks the router answers live (0: none; default 40, or 0 with --score-only)")
    ap.add_argument("--server-policy", default="shipped", metavar="shipped|off|PATH",
                    help="the learned policy the server routes with (its TMR_LEARNED_POLICY), for the live check")
    ap.add_argument("--only-ask", action="store_true", help="collect the single models' answers and stop")
    ap.add_argument("--score-only", action="store_true",
                    help="score the answers on disk (no server needed unless --live is over 0)")
    args = ap.parse_args()
    if args.live is None:
        args.live = 0 if args.score_only else LIVE_TASKS

    tasks = sample(load_tasks(), args.limit)
    models = args.models or text_models()
    store = AnswerStore(args.out / "answers.jsonl")
    collector = None
    if not (args.score_only and args.live == 0):
        pid = args.server_pid or tritonserver_pid(int(args.url.rpartition(":")[2]))
        collector = Collector(RouterClient(args.url, "grpc"), pid, models)
    if not args.score_only:
        ask_all(collector, store, tasks, models)
    if args.only_ask:
        return 0
    return evaluate(tasks, models, store, collector, args, f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores")


if __name__ == "__main__":
    sys.exit(main())
