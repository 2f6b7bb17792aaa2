"""Is an answer right? One checker per task kind, each reading only the answer a client saw (its text,
or the tool calls it got) and the task (its `check` spec, its schema)."""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema

from .sandbox import run_python
from .tasks import Task

CODE_TIMEOUT_S = 10.0
CODE_MEMORY_MB = 512


@dataclass(frozen=True)
class Answer:
    """What a client got: the text, and the calls (name, arguments as JSON text) when tools were offered."""

    text: str
    tool_calls: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Verdict:
    right: bool
    why: str


def check(task: Task, answer: Answer) -> Verdict:
    return CHECKERS[task.kind](task, answer)


# -- text normalization ------------------------------------------------------------------------
def ascii_digits(text: str) -> str:
    """Digits of any script (Devanagari, Bengali, Tamil...) as ASCII digits."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def normalize(text: str) -> str:
    """Case-folded, compatibility-normalized, digits of any script as ASCII, punctuation as spaces."""
    text = ascii_digits(unicodedata.normalize("NFKC", text).casefold())
    text = "".join(" " if unicodedata.category(c).startswith(("P", "S")) and c not in ".-" else c for c in text)
    return " ".join(text.split())


def _find(haystack: str, needle: str) -> int:
    """Where `needle` first occurs in `haystack` (both normalized), -1 if nowhere; written in ASCII, it must
    stand as a whole word, and a number must not be part of a longer one ("3" is not in "3.5")."""
    needle = normalize(needle)
    if not needle:
        return -1
    if needle.isascii():
        found = re.search(rf"(?<![a-z0-9])(?<![0-9][.,]){re.escape(needle)}(?![a-z0-9])(?![.,][0-9])", haystack)
        return found.start() if found else -1
    return haystack.find(needle)


def _same(got: Any, want: Any) -> bool:
    """A value as expected: strings case- and space-insensitive, numbers numerically, booleans exactly."""
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, (int, float)):
        try:
            return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if isinstance(want, str):
        return isinstance(got, str) and normalize(got) == normalize(want)
    return bool(got == want)


# -- the checkers --------------------------------------------------------------------------------
def factual(task: Task, answer: Answer) -> Verdict:
    """Right when an accepted variant appears before any rejected one ("Canberra, not Sydney" is right,
    "Sydney" is not)."""
    text, spec = normalize(answer.text), task.check
    hits = sorted((pos, a) for a in spec["accept"] if (pos := _find(text, a)) >= 0)
    misses = sorted((pos, r) for r in spec.get("reject", []) if (pos := _find(text, r)) >= 0)
    if misses and (not hits or misses[0][0] < hits[0][0]):
        return Verdict(False, f"says {misses[0][1]!r}")
    return Verdict(bool(hits), f"says {hits[0][1]!r}" if hits else "no accepted answer in it")


_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\d*\.\d+")


def final_number(text: str) -> float | None:
    """The last number on the line of the last 'Answer' ("Answer: 500 - 225 = 275" is 275), else the
    first number after it, else the last number written; thousands commas allowed."""
    text = ascii_digits(unicodedata.normalize("NFKC", text))
    at = text.lower().rfind("answer")
    if at >= 0:
        line, _, rest = text[at:].partition("\n")
        found = _NUMBER.findall(line)[-1:] or _NUMBER.findall(rest)[:1]
    else:
        found = []
    found = found or _NUMBER.findall(text)[-1:]
    return float(found[0].replace(",", "")) if found else None


def numeric(task: Task, answer: Answer) -> Verdict:
    spec = task.check
    got, want = final_number(answer.text), float(spec["number"])
    if got is None:
        return Verdict(False, "no number in it")
    ok = math.isclose(got, want, rel_tol=float(spec.get("rel_tol", 1e-9)), abs_tol=float(spec.get("abs_tol", 1e-6)))
    return Verdict(ok, f"{got:g}" + ("" if ok else f", not {want:g}"))


_FENCE = re.compile(r"```[ \t]*(?:python|py|json)?[ \t]*\n(.*?)(?:```|$)", re.S | re.I)


def unfenced(text: str) -> str:
    """The first fenced block's body, or the text itself."""
    match = _FENCE.search(text)
    return match.group(1) if match else text


def code(task: Task, answer: Answer) -> Verdict:
    """Right when the answer's code passes the task's tests in the sandbox."""
    spec = task.check
    source = unfenced(answer.text)
    if f"def {spec['entry']}" not in source:
        return Verdict(False, f"no function {spec['entry']!r}")
    run = run_python(source, spec["tests"], CODE_TIMEOUT_S, CODE_MEMORY_MB)
    return Verdict(run.ok, "tests pass" if run.ok else run.why)


def _json_value(text: str) -> Any:
    body = unfenced(text).strip()
    try:
        return json.loads(body)
    except ValueError:
        start, end = body.find("{"), body.rfind("}")
        return json.loads(body[start:end + 1]) if 0 <= start < end else None


def extraction(task: Task, answer: Answer) -> Verdict:
    """Right when the answer is JSON valid against the task's schema, with the expected values."""
    spec, fmt = task.check, task.response_format or {}
    schema = fmt.get("json_schema", {}).get("schema") if fmt.get("type") == "json_schema" else None
    try:
        value = _json_value(answer.text)
    except ValueError:
        return Verdict(False, "not JSON")
    if not isinstance(value, dict):
        return Verdict(False, "not a JSON object")
    if schema is not None:
        try:
            jsonschema.validate(value, schema)
        except jsonschema.ValidationError as exc:
            return Verdict(False, f"against the schema: {exc.message[:200]}")
    wrong = [k for k, v in spec["expect"].items() if not _same(value.get(k), v)]
    return Verdict(not wrong, f"{wrong[0]}: {value.get(wrong[0])!r}, not {spec['expect'][wrong[0]]!r}" if wrong
                   else "fields as expected")


def tool_call(task: Task, answer: Answer) -> Verdict:
    """Right when some call names the expected function with the expected arguments."""
    spec = task.check
    if not answer.tool_calls:
        return Verdict(False, "no tool call")
    for name, raw in answer.tool_calls:
        if name != spec["name"]:
            continue
        try:
            args = json.loads(raw or "{}")
        except ValueError:
            return Verdict(False, f"{name}: arguments are not JSON")
        wrong = [k for k, v in spec["arguments"].items() if not _same(args.get(k), v)]
        if not wrong:
            return Verdict(True, f"{name} with the expected arguments")
        return Verdict(False, f"{name}: {wrong[0]}={args.get(wrong[0])!r}, not {spec['arguments'][wrong[0]]!r}")
    return Verdict(False, f"called {answer.tool_calls[0][0]}, not {spec['name']}")


CHECKERS: dict[str, Callable[[Task, Answer], Verdict]] = {
    "factual": factual, "math": numeric, "code": code, "json": extraction, "tool": tool_call}
