"""The unseen classifier set holds no near-duplicate of any training text: a query that differs from a
training row by a word or two measures recall, not generalization.

Similarity is difflib's SequenceMatcher ratio over the two texts' word lists (lower-cased, punctuation
stripped): 2 * matching words / total words. 0.8 flags e.g. one word changed in a ten-word query.
The training sources are every corpus file (model_router/classifier/training/corpus/*.tsv) and the
dev set's training split (training/data.py's split_dev), read from ../shared when it is there."""
from __future__ import annotations

import re
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from model_router.classifier.training.data import Query, load_corpus, load_jsonl, split_dev

from .test_classifier_unseen import UNSEEN

NEAR = 0.8
DEV = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "queries_dev.jsonl"


def words(text: str) -> list[str]:
    return re.findall(r"[^\s\.,!?;:\"'()\[\]।॥…“”‘’—\-]+", text.lower())


def near_duplicates(queries: list[Query], training: list[Query], threshold: float = NEAR) -> list[tuple]:
    """(query id, training id, similarity) for each query with a training row at least `threshold` alike."""
    rows = [(r.id, words(r.text)) for r in training]
    found = []
    for q in queries:
        matcher = SequenceMatcher(autojunk=False)
        matcher.set_seq2(words(q.text))  # the one cached: the training rows go through as seq1
        for rid, row in rows:
            matcher.set_seq1(row)
            if matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold \
                    and matcher.ratio() >= threshold:
                found.append((q.id, rid, round(matcher.ratio(), 2)))
    return found


def test_the_measure_flags_a_changed_word_and_passes_a_rewording() -> None:
    row = [Query("t", "please read this paragraph aloud in a calm voice for me", ())]
    assert near_duplicates([Query("a", "Please read this paragraph aloud in a calm voice for us.", ())], row)
    assert not near_duplicates([Query("b", "Could you speak this text to me, slowly and calmly?", ())], row)


def test_no_unseen_query_nearly_repeats_the_corpus() -> None:
    assert near_duplicates(load_jsonl(UNSEEN), load_corpus()) == []


def test_no_unseen_query_nearly_repeats_the_dev_training_split() -> None:
    if not DEV.exists():
        pytest.skip(f"the dev set is not here ({DEV}): training then reads the corpus alone")
    train, _ = split_dev(load_jsonl(DEV))
    assert near_duplicates(load_jsonl(UNSEEN), train) == []
