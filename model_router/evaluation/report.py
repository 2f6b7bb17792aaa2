"""The routing evaluation's scoring half: grade the answers on disk, fit the learned variants on the
learning split (their margins by cross-validation), score every policy on the held-out split, check a
live run of the router against its computed decisions, and write the report, the plot and the policy."""
from __future__ import annotations

import argparse
import functools
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..cache.semantic import e5_embedder
from ..classifier import QueryClassifier
from ..registry import Registry, load_registry
from ..routing.policy import PREFERENCES as POLICY_WEIGHTS, Query
from ..routing.learned import VARIANTS, Embedder, LearnedPolicy
from ..settings import RouterSettings
from .answers import AnswerRecord, AnswerStore
from .collect import Collector
from .fit import fit_policy
from .metrics import apgr, cost_at, finite, frontier, on_line, points_of
from .plot import plot
from .policies import MARGINS, Graded, Score, as_routed, oracle, random_mix, route_all
from .tasks import Task

PROFILE = "cpu"
FOLDS = 5
BALANCED_KEEPS = 0.95  # of the strongest model's accuracy (the goal of `balanced`), out of fold on the learning split
MIX_RATIOS = (0.1, 0.25, 0.5, 0.75, 0.9)
PREFERENCES = tuple(reversed(POLICY_WEIGHTS))  # cost, balanced, quality: cheapest first


def cached(embed: Embedder) -> Embedder:
    """Each text embedded once: the policies are scored many times over the same tasks."""
    return functools.lru_cache(maxsize=None)(lambda text: tuple(float(v) for v in embed(text)))


@dataclass
class Context:
    registry: Registry
    models: list[str]
    graded: Graded
    routed: dict[str, Query]
    embedder: Embedder

    def priors(self) -> dict[str, float]:
        return {m: self.registry.model(m).quality for m in self.models}

    def by_cost(self, tasks: Sequence[Task]) -> list[str]:
        return sorted(self.models, key=lambda m: self.graded.mean_cost(m, tasks))

    def policy_score(self, name: str, tasks: Sequence[Task], prefer: str, learned: LearnedPolicy | None = None,
                     margin: float | None = None) -> Score:
        return self.graded.score(name, route_all(self.registry, PROFILE, self.models, self.routed, tasks, prefer,
                                                 learned, margin))

    def fit(self, tasks: Sequence[Task], variant: str, margins: dict[str, float] | None = None) -> LearnedPolicy:
        costs = {m: round(self.graded.mean_cost(m, tasks), 3) for m in self.models}
        return fit_policy(self.graded.outcomes(tasks, self.routed), variant, self.priors(), costs, margins,
                          {"tasks": len(tasks), "models": self.models}, self.embedder)


@dataclass
class Fitted:
    """A variant's margins, chosen on out-of-fold decisions over the learning split, and its out-of-fold
    APGR there (which variant to keep is decided on the learning split, never on the held-out one)."""

    margins: dict[str, float]
    oof_apgr: float


def fitted_margins(ctx: Context, learn: list[Task], variant: str) -> Fitted:
    """Each preference's margin, chosen on out-of-fold decisions made with that preference's weights:
    balanced the widest that keeps BALANCED_KEEPS of the strongest model's accuracy, cost the most accurate
    that costs no more than the cheapest model, quality 0 (only the best suits)."""
    folds = [learn[i::FOLDS] for i in range(FOLDS)]
    oof: dict[tuple[str, float], dict[str, str]] = {(p, m): {} for p in ("balanced", "cost") for m in MARGINS}
    for k, held in enumerate(folds):
        train = [t for j, f in enumerate(folds) if j != k for t in f]
        policy = ctx.fit(train, variant)
        for prefer, margin in oof:
            oof[(prefer, margin)].update(route_all(ctx.registry, PROFILE, ctx.models, ctx.routed, held, prefer,
                                                   policy, margin))
    sweep = {key: ctx.graded.score(f"{key}", choices) for key, choices in oof.items()}
    singles = [ctx.graded.score(m, {t.id: m for t in learn}) for m in ctx.models]
    strongest, cheapest = max(singles, key=lambda s: s.accuracy), min(singles, key=lambda s: s.cpu_s)
    keeps = [m for (p, m), s in sweep.items() if p == "balanced" and s.accuracy >= BALANCED_KEEPS * strongest.accuracy]
    frugal = [m for (p, m), s in sweep.items() if p == "cost" and s.cpu_s <= cheapest.cpu_s]
    margins = {"quality": 0.0, "balanced": max(keeps, default=0.0),
               "cost": max(frugal, key=lambda m: (sweep[("cost", m)].accuracy, m), default=1.0)}
    points = [(s.cpu_s, s.accuracy) for (p, _), s in sweep.items() if p == "balanced"]
    return Fitted(margins, apgr(points, cheapest, strongest))


def live_run(ctx: Context, tasks: list[Task], collector: Collector, out: Path,
             server_policy: LearnedPolicy | None) -> dict:
    """The router answers `tasks` live (prefer balanced), every model loaded as the computed decisions
    assume; its choices against the computed ones."""
    computed = route_all(ctx.registry, PROFILE, ctx.models, ctx.routed, tasks, "balanced", server_policy)
    collector.warm()
    records: list[AnswerRecord] = []
    for t in tasks:
        records.append(collector.ask(t, "router:balanced", prefer="balanced"))
    (out / "live.jsonl").write_text("".join(json.dumps(r.__dict__, ensure_ascii=False) + "\n" for r in records))
    right = [r.verdict(t).right for r, t in zip(records, tasks)]
    served = [r.served_by if r.served_by in ctx.models else None for r in records]  # None: no text model
    agree = [model == computed[t.id] for model, t in zip(served, tasks)]
    expected = ctx.graded.score("computed", computed)
    return {"tasks": len(tasks), "policy": server_policy.variant if server_policy else "hand-set",
            "server_decided_by_learned": any(r.decided_by.startswith("learned") for r in records),
            "live_accuracy": statistics.fmean(right) if right else None, "computed_accuracy": expected.accuracy,
            "same_model": statistics.fmean(agree) if agree else None,
            "live_cpu_s": statistics.fmean(r.cpu_s for r in records) if records else None,
            "computed_cpu_s": expected.cpu_s,
            "disagreements": [{"task": t.id, "live": r.served_by, "computed": computed[t.id], "error": r.error}
                              for r, t, ok in zip(records, tasks, agree) if not ok][:20]}


@dataclass
class Results:
    """Every policy's score on the held-out split, and each learned variant's fit and sweep."""

    singles: list[Score]
    strong: Score
    weak: Score
    scores: list[Score]
    handset: list[Score]
    variants: dict[str, dict]
    kept: str = ""


def score_policies(ctx: Context, learn: list[Task], heldout: list[Task]) -> Results:
    singles = [ctx.graded.score(m, {t.id: m for t in heldout}) for m in ctx.models]
    strong = max(singles, key=lambda s: (s.accuracy, -s.cpu_s))
    weak = min(singles, key=lambda s: (s.cpu_s, -s.accuracy))
    scores = [*singles, *(random_mix(ctx.graded, heldout, weak.name, strong.name, p) for p in MIX_RATIOS),
              oracle(ctx.graded, heldout, ctx.by_cost(heldout))]
    handset = [ctx.policy_score(f"router {p} (hand-set)", heldout, p) for p in PREFERENCES]
    res = Results(singles, strong, weak, scores + handset, handset, {})
    for variant in VARIANTS:
        fitted = fitted_margins(ctx, learn, variant)
        policy = ctx.fit(learn, variant, fitted.margins)
        prefs = [ctx.policy_score(f"router {p} ({variant})", heldout, p, policy) for p in PREFERENCES]
        sweep = [ctx.policy_score(f"sweep {m}", heldout, "balanced", policy, m) for m in MARGINS]
        curve = [(s.cpu_s, s.accuracy) for s in sweep]
        res.variants[variant] = {
            "policy": policy, "prefs": prefs, "margins": fitted.margins, "oof_apgr": fitted.oof_apgr,
            "apgr": apgr(curve, weak, strong),  # RouteLLM's: the router's curve, its threshold swept
            "apgr_3": apgr(points_of(prefs), weak, strong),  # from its three preferences, as the hand-set one
            "cost_at_95": cost_at(points_of(prefs), strong),
            "cost_at_95_curve": cost_at(curve, strong), "curve": curve}
        res.scores += prefs
    order = {v: i for i, v in enumerate(VARIANTS)}  # chosen on the learning split; ties go to the simplest
    res.kept = max(res.variants, key=lambda v: (round(res.variants[v]["oof_apgr"], 4), -order[v]))
    return res


def goals(res: Results) -> dict[str, bool]:
    """The goals of a router that pays, on the held-out split, for the kept variant."""
    cost_pref, bal, qual = res.variants[res.kept]["prefs"]
    line, strong = frontier(res.singles), res.strong
    cheapest = min(res.singles, key=lambda s: s.cpu_s)
    hand_points = [(s.cpu_s, s.accuracy) for s in res.handset]
    return {
        "balanced_keeps_95pct_at_60pct_cost":
            bal.accuracy >= 0.95 * strong.accuracy and bal.cpu_s <= 0.6 * strong.cpu_s,
        "apgr_at_least_0.6": res.variants[res.kept]["apgr"] >= 0.6,
        "router_points_on_or_above_line":
            all(s.accuracy >= on_line(line, s.cpu_s) - 1e-9 for s in (cost_pref, bal, qual)),
        "cost_as_accurate_as_cheapest_for_less":
            cost_pref.accuracy >= cheapest.accuracy and cost_pref.cpu_s <= cheapest.cpu_s,
        "quality_within_2_points_of_strongest": qual.accuracy >= strong.accuracy - 0.02,
        "learned_beats_hand_set": res.variants[res.kept]["apgr_3"] > apgr(hand_points, res.weak, strong),
    }


def evaluate(tasks: list[Task], models: list[str], store: AnswerStore, collector: Collector | None,
             args: argparse.Namespace, cpu: str) -> int:
    """Score, check live, write report.json, cost_quality.png and learned_policy.json under args.out."""
    started = time.monotonic()
    graded = Graded(tasks, models, store)
    tasks = graded.complete(tasks)
    learn = [t for t in tasks if t.split == "learn"]
    heldout = [t for t in tasks if t.split == "heldout"]
    if len(learn) < FOLDS or not heldout:
        print(f"too few answered tasks to score ({len(learn)} learning, {len(heldout)} held out)")
        return 1
    ctx = Context(load_registry(), models, graded, as_routed(tasks, QueryClassifier()), cached(e5_embedder()))
    res = score_policies(ctx, learn, heldout)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learned_policy.json").write_text(res.variants[res.kept]["policy"].to_json() + "\n")
    live = None
    if args.live and collector is not None:
        server_policy = RouterSettings(learned_policy=args.server_policy).learned(ctx.embedder)
        print(f"live: {min(args.live, len(heldout))} held-out tasks through the router (prefer balanced)", flush=True)
        live = live_run(ctx, heldout[:args.live], collector, args.out, server_policy)
    hand_points = [(s.cpu_s, s.accuracy) for s in res.handset]
    report = {
        "cpu": cpu, "models": models, "tasks": {"learn": len(learn), "heldout": len(heldout)},
        "answers_cpu_s_total": round(sum(r.cpu_s for r in graded.answers.values()), 1),
        "answers_wall_s_total": round(sum(r.latency_s for r in graded.answers.values()), 1),
        "strongest": res.strong.name, "cheapest": res.weak.name, "scores": [s.row() for s in res.scores],
        "hand_set": {"apgr_3": apgr(hand_points, res.weak, res.strong), "cost_at_95": cost_at(hand_points, res.strong)},
        "variants": {v: {k: d[k] for k in ("apgr", "apgr_3", "oof_apgr", "cost_at_95", "cost_at_95_curve", "margins")}
                     for v, d in res.variants.items()},
        "kept": res.kept, "goals": goals(res), "live": live, "scored_in_s": round(time.monotonic() - started, 1),
    }
    (args.out / "report.json").write_text(json.dumps(finite(report), indent=1, ensure_ascii=False) + "\n")
    best = res.variants[res.kept]
    plot(args.out / "cost_quality.png", res.singles, frontier(res.singles), res.scores, res.handset, best["prefs"],
         best["curve"], res.kept, report["cpu"])
    print_table(report, res.scores, res.variants, res.kept)
    print(f"\nwrote {args.out / 'report.json'}, {args.out / 'cost_quality.png'}, {args.out / 'learned_policy.json'}")
    return 0


def print_table(report: dict, scores: list[Score], variants: dict, kept: str) -> None:
    strong = next(s for s in scores if s.name == report["strongest"])
    tasks = report["tasks"]
    print(f"\nheld-out split: {tasks['heldout']} tasks ({tasks['learn']} learned from); {report['cpu']}")
    print(f"{'policy':<44} {'accuracy':>8} {'CPU-s':>7} {'of best':>7} {'tokens':>7} {'p50 s':>6} {'p95 s':>6}")
    for s in scores:
        print(f"{s.name:<44} {s.accuracy:>8.3f} {s.cpu_s:>7.2f} {s.cpu_s / strong.cpu_s:>7.2f} {s.tokens:>7.0f} "
              f"{s.p50_s:>6.2f} {s.p95_s:>6.2f}")
    hs = report["hand_set"]
    print(f"\nAPGR from the three preferences: hand-set {hs['apgr_3']:.3f}; "
          + "; ".join(f"{v} {d['apgr_3']:.3f}" for v, d in variants.items()))
    print("APGR of the learned router's curve (its margin swept, RouteLLM's): "
          + "; ".join(f"{v} {d['apgr']:.3f}" for v, d in variants.items())
          + f"; kept (best on the learning split's folds, {variants[kept]['oof_apgr']:.3f}): {kept}")
    c95 = variants[kept]["cost_at_95"]
    print(f"cost at 95% of {report['strongest']}'s accuracy: " + (f"{c95:.2f} of its cost" if c95 else "not reached"))
    for goal, ok in report["goals"].items():
        print(f"  {'met ' if ok else 'MISS'} {goal}")
    if report["live"]:
        lv = report["live"]
        print(f"live ({lv['policy']}, {lv['tasks']} tasks): same model as computed for {lv['same_model']:.0%}; "
              f"accuracy live {lv['live_accuracy']:.3f} vs computed {lv['computed_accuracy']:.3f}; "
              f"CPU-s live {lv['live_cpu_s']:.2f} vs computed {lv['computed_cpu_s']:.2f}")
