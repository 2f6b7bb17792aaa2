"""A policy learned from outcomes: fitting recovers the probabilities a synthetic decision log was drawn
with (and says how sure it is), feedback joins its decision, and the router's ranking follows what was
learned (the best model for quality, the cheapest within the margin for balanced) where it has data."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from model_router import REPO_ROOT
from model_router.evaluation.fit import Outcome, fit_logistic, fit_policy, outcomes_from_log
from model_router.errors import RegistryError
from model_router.registry import load_registry
from model_router.routing.learned import ARTIFACT, LearnedPolicy, Request
from model_router.routing.policy import LiveState, Query, rank
from model_router.settings import RouterSettings

from .test_router import build, req

REGISTRY = load_registry()
BIG, SMALL, TINY = "qwen2_5_coder_1_5b_instruct", "qwen2_5_coder_0_5b_instruct", "smollm2_135m_instruct"
LOADED = LiveState(is_loaded=lambda m: True, blocker=lambda m, forced: "", cooling_s=lambda m: 0.0,
                   recent_failures=lambda m: 0)
# The truth a synthetic log is drawn from: P(right) per model and kind of request.
TRUTH = {
    (BIG, Request("agent", "text", "low", "en")): 0.9, (SMALL, Request("agent", "text", "low", "en")): 0.85,
    (BIG, Request("agent", "tools", "high", "en")): 0.7, (SMALL, Request("agent", "tools", "high", "en")): 0.2,
    (BIG, Request("agent", "text", "medium", "hi")): 0.6, (SMALL, Request("agent", "text", "medium", "hi")): 0.1,
}


def synthetic_log(n: int, seed: int = 7) -> list[dict]:
    """Decisions and feedback as the router and POST /v1/feedback write them."""
    rng, records = random.Random(seed), []
    for i in range(n):
        (model, req), p = rng.choice(list(TRUTH.items()))
        records.append({"type": "decision", "id": f"d{i}", "time": i, "model": model, "use_case": req.use_case,
                        "language": req.language, "complexity": req.complexity, "form": req.form,
                        "prefer": "balanced", "cache": "miss"})
        records.append({"type": "outcome", "id": f"d{i}", "time": i + 0.5, "score": float(rng.random() < p)})
    return records


def test_fitting_a_synthetic_log_recovers_the_probabilities_it_was_drawn_with() -> None:
    outcomes = outcomes_from_log(synthetic_log(6000))
    policy = fit_policy(outcomes, "labels", {BIG: 0.6, SMALL: 0.45})
    for (model, req), p in TRUTH.items():
        est = policy.estimate(model, req)
        assert est is not None and abs(est.p - p) < 0.05, (model, req, est, p)
        assert 0 < est.sd < 0.03 and est.n > 500  # ~1000 answers per cell: sure of it
    # A kind never seen falls back to its nearest seen parent, and says so.
    unseen = policy.estimate(BIG, Request("agent", "tools", "low", "ta"))
    assert unseen is not None and unseen.cell == "agent|tools" and abs(unseen.p - 0.7) < 0.05


def test_few_answers_stay_near_the_prior_and_are_unsure() -> None:
    outcomes = [Outcome(BIG, Request("agent", "text", "low", "en"), 1.0)] * 2
    est = fit_policy(outcomes, "labels", {BIG: 0.5}).estimate(BIG, Request("agent", "text", "low", "en"))
    assert est is not None and 0.5 < est.p < 0.9 and est.sd > 0.1


def test_feedback_joins_its_decision_and_the_last_score_wins() -> None:
    records = [{"type": "decision", "id": "a", "model": BIG, "use_case": "agent", "language": "en",
                "complexity": "low", "form": "json"},
               {"type": "outcome", "id": "a", "score": 0.2}, {"type": "outcome", "id": "a", "score": 0.9},
               {"type": "outcome", "id": "unknown", "score": 1.0}]
    assert outcomes_from_log(records) == [Outcome(BIG, Request("agent", "json", "low", "en"), 0.9)]


def test_logistic_fit_recovers_a_known_boundary() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(size=(2000, 3)), np.ones(2000)])
    y = (rng.random(2000) < 1 / (1 + np.exp(-(3 * x[:, 0])))).astype(float)
    w = fit_logistic(x, y, l2=0.1)
    assert 2.4 < w[0] < 3.6 and abs(w[1]) < 0.3 and abs(w[3]) < 0.3, w


def policy(cells: dict, margins: dict | None = None, cost: dict | None = None) -> LearnedPolicy:
    return LearnedPolicy("labels", cells={m: {k: [p, 0.02, 100] for k, p in c.items()} for m, c in cells.items()},
                         cost=cost or {BIG: 8.0, SMALL: 4.0, TINY: 4.5},
                         margins=margins or {"quality": 0.0, "balanced": 0.1, "cost": 1.0})


def first(query: Query, learned: LearnedPolicy | None, margin: float | None = None) -> str:
    return rank(REGISTRY, "cpu", query, LOADED, learned, margin).candidates[0].model


def test_the_ranking_follows_what_was_learned() -> None:
    learned = policy({BIG: {"agent|text|low|en": 0.80}, SMALL: {"agent|text|low|en": 0.75},
                      TINY: {"agent|text|low|en": 0.30}})
    q = Query("agent", "en", "low", prefer="quality")
    assert first(q, learned) == BIG                              # the best, whatever it costs
    assert first(Query("agent", "en", "low", prefer="balanced"), learned) == SMALL  # within 0.1 of the best, cheaper
    assert first(Query("agent", "en", "low", prefer="balanced"), learned, margin=0.0) == BIG
    # The data overrule the registry: hand-set, a low-complexity English query goes to SmolLM2.
    assert first(Query("agent", "en", "low", prefer="balanced"), None) == TINY
    decided = rank(REGISTRY, "cpu", q, LOADED, learned)
    assert decided.decided_by.startswith("learned") and "p(right) 0.80" in decided.candidates[0].why


def test_tools_go_where_the_data_say_they_are_handled() -> None:
    learned = policy({BIG: {"agent|tools": 0.7}, SMALL: {"agent|tools": 0.68}, TINY: {"agent|tools": 0.05}})
    q = Query("agent", "en", "low", prefer="balanced", tools=True)
    assert first(q, None) == BIG        # hand-set: tools need the strongest model
    assert first(q, learned) == SMALL   # learned: the 0.5B calls them nearly as well, for half the cost


def test_a_model_without_outcomes_only_backs_up_those_with_outcomes() -> None:
    learned = policy({BIG: {"agent": 0.2}, SMALL: {"agent": 0.1}})
    ranking = rank(REGISTRY, "cpu", Query("agent", "en", "low", prefer="cost"), LOADED, learned)
    order = [c.model for c in ranking.candidates]
    assert order[:2] == [SMALL, BIG], order  # SmolLM2 would be cheapest, but nothing vouches for it
    assert set(order[2:]) == {TINY, "smollm2_135m_instruct_bf16"}
    assert "no outcomes learned" in ranking.candidates[2].why


def test_outcomes_in_a_language_overrule_the_registrys_language_list() -> None:
    key = "agent|text|medium|hi"
    hindi = Query("agent", "hi", "medium", prefer="balanced")
    assert first(hindi, None) == BIG  # the registry lists hi for the 1.5B only
    learned = policy({BIG: {key: 0.62}, SMALL: {key: 0.60}, TINY: {key: 0.0}})
    assert first(hindi, learned) == SMALL  # answers in Hindi were seen: nearly as good, cheaper
    # Without outcomes in that language, the registry's list still rules.
    assert first(Query("agent", "ta", "medium", prefer="balanced"), learned) == BIG


def test_the_router_routes_by_what_was_learned() -> None:
    router, calls, _ = build()
    list(router.route(req()))
    assert calls == [TINY]  # hand-set: a simple English question goes to SmolLM2
    router, calls, _ = build()
    router.learned = policy({BIG: {"agent": 0.8}, SMALL: {"agent": 0.78}, TINY: {"agent": 0.2}})
    done = list(router.route(req()))[-1]
    assert calls == [SMALL] and done.decision["decided_by"].startswith("learned"), done.decision


def test_the_artifact_round_trips_and_refuses_an_unknown_variant(tmp_path) -> None:
    learned = policy({BIG: {"agent": 0.7}})
    path = tmp_path / "p.json"
    path.write_text(learned.to_json())
    assert LearnedPolicy.load(path) == learned
    assert LearnedPolicy.load("off") is None
    with pytest.raises(ValueError, match="variant"):
        LearnedPolicy.from_json(json.dumps({"variant": "magic"}))


@pytest.mark.skipif(not ARTIFACT.is_file(), reason="no learned policy shipped")
def test_the_shipped_policy_names_only_registry_models() -> None:
    shipped = LearnedPolicy.load(ARTIFACT)
    assert shipped is not None
    assert set(shipped.cells) | set(shipped.weights) <= set(REGISTRY.models)
    assert set(shipped.margins) == {"quality", "balanced", "cost"}


def test_the_fitting_script_reads_a_decision_log_file(tmp_path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in synthetic_log(3000)))
    out = tmp_path / "policy.json"
    run = subprocess.run([sys.executable, "scripts/fit_routing_policy.py", "--log", str(log), "--base",
                          str(tmp_path / "none.json"), "--out", str(out)], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert run.returncode == 0, run.stderr
    fitted = LearnedPolicy.load(out)
    for (model, req), p in TRUTH.items():
        assert abs(fitted.estimate(model, req).p - p) < 0.07, (model, req)


def test_each_answer_counts_once_a_siblings_outcomes_shape_the_prior() -> None:
    outcomes = [Outcome(BIG, Request("agent", "text", "low", "en"), 1.0)] * 10
    outcomes += [Outcome(BIG, Request("agent", "text", "high", "en"), 0.0)] * 10
    policy = fit_policy(outcomes, "labels", {BIG: 0.5})
    low, high = (policy.estimate(BIG, Request("agent", "text", c, "en")).p for c in ("low", "high"))
    # Ten right answers are shrunk towards what the model's *other* answers say (all wrong), not towards
    # a parent that already counts them: the estimate stays well short of certainty, symmetrically.
    assert 0.6 < low < 0.8 and 0.2 < high < 0.4 and abs(low + high - 1) < 1e-3, (low, high)


def fake_embedder(text: str) -> tuple[float, float]:
    return (1.0, 0.0) if "hard" in text else (0.0, 1.0)


def test_an_embedding_policy_routes_by_the_querys_embedding() -> None:
    weights = {BIG: [3.0, 0.0, 0.0], SMALL: [-3.0, 2.0, 0.0], TINY: [-5.0, -5.0, 0.0]}  # [hard, easy, bias]
    learned = LearnedPolicy("embedding", weights=weights, cost={BIG: 8.0, SMALL: 4.0, TINY: 4.5},
                            embedder=fake_embedder)
    assert first(Query("agent", "en", "low", text="a hard one"), learned) == BIG
    assert first(Query("agent", "en", "low", text="an easy one"), learned) == SMALL

    def broken(text: str) -> tuple[float, float]:
        raise RuntimeError("the embedding model is gone")
    learned.embedder = broken  # a failing embedder: the hand-set policy decides, the request is served
    assert first(Query("agent", "en", "low", text="a hard one"), learned) == TINY


def test_a_requested_model_goes_first_even_without_outcomes() -> None:
    learned = policy({BIG: {"agent": 0.8}, SMALL: {"agent": 0.7}})
    bf16 = "smollm2_135m_instruct_bf16"
    assert first(Query("agent", "en", "low", model_hint=bf16), learned) == bf16


def test_a_bad_learned_policy_setting_is_named_at_startup(tmp_path) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text('{"variant": "magic"}')
    for value in (str(bad), str(tmp_path / "missing.json")):
        with pytest.raises(RegistryError, match="TMR_LEARNED_POLICY"):
            RouterSettings(learned_policy=value).learned()
    assert RouterSettings(learned_policy="off").learned() is None
