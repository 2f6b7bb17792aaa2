"""Hypothesis strategies for the contract's values, each within the contract's limits.

Raw values are what a client sends (JSON-able dicts and lists, optional keys present or absent);
the contract's typed values are built from them by its own validators, so a strategy never
restates a rule that the contract owns.
"""
from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from model_router.contract.generation import FINISH_REASONS
from model_router.contract.request import is_blank
from model_router.contract.router import RouterAnswer, Usage
from model_router.contract.sampling import MAX_STOP_STRINGS
from model_router.vocabulary import ATTACHMENT_KINDS, COMPLEXITIES, LANGUAGES, USE_CASES

# Fast enough for the unit suite (a few hundred milliseconds per property); no example database,
# so that a run leaves nothing in the tree.
FAST = settings(max_examples=50, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow])

# Whole graphemes that single code points rarely give: Indic conjuncts and vowel signs, emoji with
# skin tones, ZWJ families and flags, and the invisible joiners they carry.
PIECES = ("नमस्ते", "क्ष", "ज्ञ", "வணக்கம்", "ஸ்ரீ", "হ্যালো", "ਸਤ ਸ੍ਰੀ", "ನಮಸ್ಕಾರ", "നമസ്കാരം", "నమస్కారం",
          "નમસ્તે", "मराठी", "👋🏽", "👨‍👩‍👧", "🇮🇳", "❤️", "\u200d", "\u200b", "\n", " ", '"', "\\", "{", "}")
_CHARS = st.characters(exclude_categories=("Cs",))  # UTF-8 cannot carry lone surrogates


def unicode_text(min_size: int = 0, max_size: int = 24) -> st.SearchStrategy[str]:
    """Any text: code points from every plane, mixed with the pieces above."""
    return st.lists(st.one_of(_CHARS, st.sampled_from(PIECES)), min_size=min_size, max_size=max_size).map("".join)


def visible_text(max_size: int = 24) -> st.SearchStrategy[str]:
    """Text with something to read (not only whitespace and invisible format characters)."""
    return unicode_text(1, max_size).filter(lambda t: not is_blank(t) and t.strip())


def binary(max_size: int = 64) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=1, max_size=max_size)


def json_values(max_leaves: int = 6) -> st.SearchStrategy[Any]:
    """Values JSON carries exactly (no NaN, integers within double precision)."""
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53),
                       st.floats(allow_nan=False, allow_infinity=False), unicode_text(max_size=8))
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3)
                        | st.dictionaries(unicode_text(max_size=6), inner, max_size=3), max_leaves=max_leaves)


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(unicode_text(max_size=6), json_values(), max_size=4)


NAMES = st.from_regex(r"[A-Za-z0-9_\-]{1,64}", fullmatch=True)  # a tool's name (tools.NAME_PATTERN)


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A small JSON schema of an object: typed properties (unicode names), some required, maybe described."""
    props = draw(st.dictionaries(visible_text(8), st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean"])},
        optional={"description": unicode_text(max_size=16)}), max_size=4))
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if props and draw(st.booleans()):
        schema["required"] = draw(st.lists(st.sampled_from(sorted(props)), min_size=1, unique=True))
    return schema


def tools(max_size: int = 3) -> st.SearchStrategy[list[dict[str, Any]]]:
    """OpenAI tool definitions, names unique."""
    function = st.fixed_dictionaries({}, optional={"description": unicode_text(max_size=32), "parameters": schemas(),
                                                   "strict": st.booleans()})
    return st.lists(NAMES, max_size=max_size, unique=True).flatmap(lambda names: st.tuples(
        *(function.map(lambda f, n=n: {"type": "function", "function": {"name": n, **f}}) for n in names)).map(list))


def tool_choices(names: list[str]) -> st.SearchStrategy[Any]:
    if not names:
        return st.sampled_from(["none"])
    named = st.sampled_from(names).map(lambda n: {"type": "function", "function": {"name": n}})
    return st.sampled_from(["none", "auto", "required"]) | named


def response_formats() -> st.SearchStrategy[dict[str, Any]]:
    json_schema = st.fixed_dictionaries({}, optional={"name": NAMES, "description": unicode_text(max_size=16),
                                                      "schema": schemas(), "strict": st.booleans()})
    return st.one_of(st.sampled_from([{"type": "text"}, {"type": "json_object"}]),
                     json_schema.map(lambda s: {"type": "json_schema", "json_schema": s}))


def structured_outputs() -> st.SearchStrategy[dict[str, Any]]:
    """Each kind of vLLM's output constraint, exactly one key."""
    return st.one_of(
        json_objects().map(lambda s: {"json": s}),
        json_objects().map(lambda s: {"json": json.dumps(s, ensure_ascii=False)}),  # the schema as its JSON text
        st.just({"json_object": True}),
        unicode_text(1, 40).map(lambda r: {"regex": r}),
        st.lists(unicode_text(1, 12), min_size=1, max_size=6).map(lambda c: {"choice": c}),
        unicode_text(1, 60).map(lambda g: {"grammar": g}),
    )


def sampling_parameters(max_tokens: int = 4096) -> st.SearchStrategy[dict[str, Any]]:
    """`sampling_parameters` as a client writes them: numbers or numeric strings where vLLM takes both,
    a stop string or a list, the constraint as an object or its JSON text, keys vLLM takes and we ignore."""
    stop = unicode_text(1, 12)
    constraint = structured_outputs()
    return st.fixed_dictionaries({}, optional={
        "max_tokens": st.integers(1, max_tokens) | st.integers(1, max_tokens).map(str),
        "temperature": st.floats(0.0, 2.0) | st.sampled_from([0, 1, 2, "0.7"]),
        "top_p": st.floats(1e-6, 1.0),
        "top_k": st.integers(-1, 1000),
        "repetition_penalty": st.floats(0.5, 2.0),
        "stop": stop | st.lists(stop, min_size=1, max_size=MAX_STOP_STRINGS),
        "seed": st.integers(0, 2**32 - 1),
        "ignore_eos": st.booleans(),
        "structured_outputs": constraint | constraint.map(lambda c: json.dumps(c, ensure_ascii=False)),
        "n": st.just(1),
    })


@st.composite
def route_options(draw: st.DrawFn) -> dict[str, Any]:
    """The router's `options` as a client sends them."""
    options = draw(st.fixed_dictionaries({}, optional={
        "use_case": st.sampled_from(USE_CASES), "language": st.sampled_from(LANGUAGES),
        "max_latency_ms": st.floats(1, 3_600_000) | st.integers(1, 3_600_000),
        "sampling_parameters": sampling_parameters(),
        "stream": st.booleans(), "allow_fallback": st.booleans(),
        "model": st.from_regex(r"[A-Za-z0-9_\-]{1,40}(\.[A-Za-z0-9_\-]{1,8})?", fullmatch=True),
        "prefer": st.sampled_from(["quality", "balanced", "cost"]), "timeout_s": st.floats(0.1, 600),
        "admin_key": unicode_text(max_size=16), "cache": st.sampled_from(["off", "exact", "semantic"]),
        "heartbeat_s": st.floats(0.2, 60) | st.integers(1, 60), "parallel_tool_calls": st.booleans(),
        "health": st.booleans(), "cache_admin": st.sampled_from(["stats", "clear"]),
        "tools": tools(), "response_format": response_formats(),
    }))
    names = [t["function"]["name"] for t in options.get("tools", [])]
    if draw(st.booleans()):
        options["tool_choice"] = draw(tool_choices(names))
    return options


@st.composite
def conversations(draw: st.DrawFn, last_user: bool = True) -> list[dict[str, Any]]:
    """A valid conversation: an optional system turn, then user turns, each maybe answered by an
    assistant (in words, or with tool calls that tool turns answer). Ends with a user's or a tool's turn."""
    turns: list[dict[str, Any]] = []
    if draw(st.booleans()):
        turns.append({"role": "system", "content": draw(visible_text())})
    ids = iter(draw(st.lists(unicode_text(1, 16), min_size=8, max_size=8, unique=True)))
    for _ in range(draw(st.integers(1, 3))):
        turns.append({"role": "user", "content": draw(visible_text())})
        answer = draw(st.sampled_from(["none", "words", "calls"]))
        if answer == "words":
            turns.append({"role": "assistant", "content": draw(visible_text())})
        elif answer == "calls":
            calls = [{"id": next(ids), "type": "function", "function": {
                "name": draw(NAMES), "arguments": json.dumps(draw(json_objects()), ensure_ascii=False)}}
                for _ in range(draw(st.integers(1, 2)))]
            turns.append({"role": "assistant", "content": draw(st.just("") | visible_text()), "tool_calls": calls})
            turns += [{"role": "tool", "content": draw(visible_text()), "tool_call_id": c["id"]} for c in calls]
    if last_user and turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": draw(visible_text())})
    return turns


def attachments() -> st.SearchStrategy[dict[str, bytes]]:
    return st.dictionaries(st.sampled_from(ATTACHMENT_KINDS), binary(), max_size=len(ATTACHMENT_KINDS))


def classifications() -> st.SearchStrategy[dict[str, Any]]:
    """A Classification's fields: each head's label, its confidence and every use case's score."""
    prob = st.floats(0, 1, width=32)
    return st.fixed_dictionaries({
        "use_case": st.sampled_from(USE_CASES), "language": st.sampled_from(LANGUAGES),
        "complexity": st.sampled_from(COMPLEXITIES), "modality": st.sampled_from(["text", *ATTACHMENT_KINDS]),
        "confidence": st.fixed_dictionaries({h: prob for h in ("use_case", "language", "complexity", "modality")}),
        "use_case_scores": st.fixed_dictionaries({u: prob for u in USE_CASES}),
    })


def languages() -> st.SearchStrategy[str]:
    """A step model's `language` input, within its 16 characters (spaces around it included)."""
    return st.text(_CHARS, max_size=16)


def router_answers() -> st.SearchStrategy[RouterAnswer]:
    """The router's answers, pieces and last responses, every optional field present or absent."""
    visemes = st.lists(st.fixed_dictionaries({"t": st.floats(0, 60), "viseme": st.sampled_from(["AA", "O", "sil"])}),
                       max_size=3)
    calls = st.lists(st.fixed_dictionaries({"id": unicode_text(1, 8), "type": st.just("function"), "function":
                     st.fixed_dictionaries({"name": NAMES, "arguments": json_objects().map(json.dumps)})}),
                     max_size=2)
    uint32 = st.integers(0, 2**32 - 1)
    return st.builds(RouterAnswer, unicode_text(max_size=60), st.booleans(), json_objects(),
                     st.none() | st.binary(max_size=64), st.none() | visemes,
                     st.sampled_from([None, "", *FINISH_REASONS, "tool_calls"]),
                     st.none() | st.builds(Usage, uint32, uint32), st.none() | calls)
