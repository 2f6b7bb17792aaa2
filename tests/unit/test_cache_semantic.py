"""Semantic matching on the committed pair set: no near miss is ever answered from the cache."""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_router import REPO_ROOT
from model_router.cache import CachedAnswer, ResponseCache, key_of, scope_of
from model_router.cache.semantic import SEMANTIC_THRESHOLD, e5_embedder, near_miss, numbers, units
from model_router.contract.router import RouterAnswer

PAIRS = [json.loads(line) for line in (REPO_ROOT / "tests/data/cache_pairs.jsonl").read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def embed():
    memo: dict[str, np.ndarray] = {}
    model = e5_embedder()
    return lambda text: memo[text] if text in memo else memo.setdefault(text, model(text))


def test_the_set_covers_every_kind_and_language() -> None:
    assert len(PAIRS) >= 200
    kinds = {p["kind"] for p in PAIRS}
    assert kinds == {"paraphrase", "entity", "number", "negation", "unit", "language"}
    assert {p["lang"] for p in PAIRS} >= {"en", "hi", "hi-latn", "mr", "ta", "te", "bn", "gu", "kn", "ml", "pa"}
    assert all(p["match"] == (p["kind"] == "paraphrase") for p in PAIRS)


@pytest.mark.parametrize("kind", ["number", "unit", "negation"])
def test_guards_stop_every_near_miss_the_embedding_cannot_see(kind: str) -> None:
    missed = [(p["a"], p["b"]) for p in PAIRS if p["kind"] == kind and not near_miss(p["a"], p["b"])]
    assert missed == []


def test_digits_of_every_script_are_one_number() -> None:
    assert numbers("गीता का अध्याय १२") == numbers("chapter 12") == numbers("অধ্যায় ১২") == ("12",)
    assert units("Convert 10 km to miles") == ("km", "mile") != units("Convert 10 miles to km")


def test_precision_is_total_at_the_chosen_threshold(embed) -> None:
    hits = [p for p in PAIRS
            if float(embed(p["a"]) @ embed(p["b"])) >= SEMANTIC_THRESHOLD and not near_miss(p["a"], p["b"])]
    false = [(p["a"], p["b"]) for p in hits if not p["match"]]
    assert false == []
    recall = sum(p["match"] for p in hits) / sum(p["match"] for p in PAIRS)
    assert recall >= 0.5, recall


def test_semantic_get_answers_a_paraphrase_and_not_another_entity(embed) -> None:
    cache = ResponseCache("memory", embed=embed)
    asked = {"text": "What is the capital of France?", "options": {"language": "en"}}
    cache.put(key_of(asked), CachedAnswer(RouterAnswer("Paris.")), scope_of(asked), asked["text"])
    for text, hit in [("What's the capital city of France?", True), ("What is the capital of Germany?", False)]:
        fields = {**asked, "text": text}
        answer, why = cache.get(key_of(fields), scope_of(fields), text, mode="semantic")
        assert (answer == CachedAnswer(RouterAnswer("Paris."))) is hit, why
        assert why.startswith("hit: semantic") if hit else why == "miss"
    other_scope = {**asked, "options": {"language": "hi"}, "text": "What's the capital city of France?"}
    assert cache.get(key_of(other_scope), scope_of(other_scope), other_scope["text"], mode="semantic")[1] == "miss"
