"""The cache key: equal for the same question however it is typed, different when the answer may differ."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from model_router.contract.router import RouterRequest
from model_router import REPO_ROOT
from model_router.cache import cacheable, key_of, scope_of
from model_router.cache.keys import CacheKeyError, normalize_text
from model_router.registry import load_registry
from model_router.routing.cached import Revision, key_fields

BASE = {
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is AI?"}],
    "attachments": {"image": b"\x89PNG fake image bytes"},
    "options": {"use_case": "agent", "language": "en", "model": None, "prefer": "balanced"},
    "sampling": {"max_tokens": 64},
    "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    "constraints": {"json_schema": {"type": "object"}},
    "profile": "cpu",
    "revision": "smollm2@abc123",
}


def variant(**changes) -> dict:
    fields = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in BASE.items()}
    for name, value in changes.items():
        section, _, item = name.partition("__")
        if item:
            fields[section] = {**fields[section], item: value}
        else:
            fields[section] = value
    return fields


@pytest.mark.parametrize("raw, expected", [
    ("  What   is\tAI? ", "what is ai"),
    ("WHAT IS AI!!", "what is ai"),
    ("भारत की राजधानी क्या है।", "भारत की राजधानी क्या है"),
    ("cafe\u0301", "café"),  # decomposed é (NFD) reads as the composed one
    ("Straße", "strasse"),  # case-folded, not just lower-cased
    ("?", ""),
])
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("changes", [
    {"messages": [{"role": "system", "content": "be   brief"}, {"role": "user", "content": "what is ai"}]},
    {"sampling": {"max_tokens": 64, "temperature": 0}},  # our default, spelled out
    {"sampling": {"max_tokens": 64, "n": 1}},  # accepted for compatibility, changes nothing
    {"options": {"use_case": "agent", "language": "en", "prefer": "balanced", "timeout_s": 5, "stream": True}},
    {"attachments": {"image": "sha256:" + hashlib.sha256(b"\x89PNG fake image bytes").hexdigest()}},
])
def test_same_question_same_key(changes: dict) -> None:
    assert key_of(variant(**changes)) == key_of(BASE)


# Every field that changes an answer, one at a time.
DIFFERENT = {
    "last turn": {"messages": [BASE["messages"][0], {"role": "user", "content": "What is ML?"}]},
    "earlier turn": {"messages": [{"role": "system", "content": "Be long."}, BASE["messages"][1]]},
    "role": {"messages": [{"role": "user", "content": "Be brief."}, BASE["messages"][1]]},
    "attachment bytes": {"attachments": {"image": b"\x89PNG another image"}},
    "attachment kind": {"attachments": {"video": b"\x89PNG fake image bytes"}},
    "no attachment": {"attachments": {}},
    "use_case": {"options__use_case": "multimodal"},
    "language": {"options__language": "hi"},
    "model": {"options__model": "qwen2_5_0_5b_instruct"},
    "prefer": {"options__prefer": "quality"},
    "max_tokens": {"sampling__max_tokens": 65},
    "temperature": {"sampling__temperature": 0.7, "sampling__seed": 1},
    "top_p": {"sampling__top_p": 0.9},
    "top_k": {"sampling__top_k": 5},
    "repetition_penalty": {"sampling__repetition_penalty": 1.1},
    "stop": {"sampling__stop": ["\n"]},
    "seed": {"sampling__seed": 7},
    "ignore_eos": {"sampling__ignore_eos": True},
    "tools": {"tools": []},
    "constraints": {"constraints": {"json_schema": {"type": "array"}}},
    "profile": {"profile": "gpu"},
    "revision": {"revision": "smollm2@def456"},
}


@pytest.mark.parametrize("field", list(DIFFERENT))
def test_answer_changing_field_changes_the_key(field: str) -> None:
    assert key_of(variant(**DIFFERENT[field])) != key_of(BASE)


def test_text_is_a_one_turn_conversation() -> None:
    assert key_of({"text": "What is AI?"}) == key_of({"messages": [{"role": "user", "content": "what is ai"}]})


def test_scope_leaves_out_only_the_last_user_turn() -> None:
    assert scope_of(variant(**DIFFERENT["last turn"])) == scope_of(BASE)
    for field in ("earlier turn", "language", "seed", "revision", "attachment bytes"):
        assert scope_of(variant(**DIFFERENT[field])) != scope_of(BASE), field


@pytest.mark.parametrize("fields, named", [
    ({"prompt": "hi"}, "prompt"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "user"}]}, "messages[0]"),
    ({"attachments": {"image": "not a hash"}}, "attachments"),
    ({"text": "hi", "sampling": {"temperature": 9}}, "sampling_parameters.temperature"),
])
def test_bad_fields_are_named(fields: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
        key_of(fields)


def test_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(CacheKeyError, match="revision"):
        key_of({"temprature": 0})


@pytest.mark.parametrize("sampling, ok", [
    (None, True), ({}, True), ({"temperature": 0}, True), ({"temperature": "0.0"}, True),
    ({"temperature": 0.8, "seed": 42}, True), ({"temperature": 0.8}, False), ({"top_p": 0.5, "temperature": 1}, False),
])
def test_cacheable(sampling: dict | None, ok: bool) -> None:
    cacheable_, why = cacheable(sampling)
    assert cacheable_ is ok
    assert (why == "") is ok
    if not ok:
        assert "seed" in why and "temperature" in why


def test_an_edited_model_in_the_repository_changes_the_key(tmp_path: Path) -> None:
    """The router's key holds its model repository's configs (config.pbtxt, 1/model.json): a model
    changed in place while the router runs misses the answers of the old one, in a Redis that other routers
    share too."""
    registry, model = load_registry(), "qwen2_5_7b_instruct"
    folder = tmp_path / model
    shutil.copytree(REPO_ROOT / "model_repository_gpu" / model, folder)
    request = RouterRequest.of("What is AI?", None, {})
    revision = Revision(registry, "gpu", tmp_path)  # the router's, made once at its load

    def key() -> str:
        return key_of(key_fields(request, "gpu", revision()))

    keys = [key(), key()]
    config = folder / "config.pbtxt"
    config.write_text(config.read_text().replace("count: 1", "count: 2", 1))
    keys.append(key())
    engine = json.loads((folder / "1" / "model.json").read_text())
    (folder / "1" / "model.json").write_text(json.dumps({**engine, "max_model_len": engine["max_model_len"] // 2}))
    keys.append(key())
    assert keys[0] == keys[1] and len(set(keys)) == 3
