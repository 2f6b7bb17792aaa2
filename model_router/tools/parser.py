"""Model output -> OpenAI tool calls, one parser for every target.

A call is an object `{"name": <an offered tool>, "arguments": <an object, or JSON text of one>}`,
written in one of the shapes models really write, read in this order (the first that holds a call
wins; the words around the calls stay the answer's content):
- Hermes' `<tool_call>{json}</tool_call>` blocks (tool_choice `auto`; Qwen2.5's template asks for them);
- a fenced JSON block (```json ... ```), as Qwen2.5-Coder writes a call through its own template;
- a bare call object (or array of them) in the text, which is also what a forced call is: constrained
  decoding guarantees the object there.
Nothing else becomes a call. An answer that max_tokens cut inside a call keeps that call, its
arguments as far as they were written, and ends with finish_reason "length", as OpenAI returns it.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from ..contract.request import RouteOptions
from .constraint import forced_tools

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"```[ \t]*([\w+.-]*)[ \t]*\n?(.*?)(```|\Z)", re.S)  # language, body, closing fence
_CALL_FENCES = ("", "json")  # the languages a fenced call is written in
_OPENS = re.compile(r"[{\[]")  # where a JSON object or array may begin
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Parsed:
    """The calls found in an answer and the words left around them."""

    content: str
    calls: list[dict[str, Any]]
    cut: bool = False  # the last call was cut short: its arguments are as far as they were written


@dataclass(frozen=True)
class Answer:
    """An answer as OpenAI returns it: its words, its tool calls (None: none), and why it ended."""

    content: str
    calls: list[dict[str, Any]] | None
    finish_reason: str | None


def _new_call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": arguments}}


def _call(obj: Any, names: set[str], tagged: bool = False) -> dict[str, Any] | None:
    """The call `obj` is, or None. Inside Hermes' tags the call is announced, so missing arguments
    are empty and Llama's `parameters` is read too; elsewhere the object must have `arguments`."""
    if not isinstance(obj, dict) or obj.get("name") not in names:
        return None
    if "arguments" in obj:
        args = obj["arguments"]
    elif tagged:
        args = obj.get("parameters", {})
    else:
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return _new_call(obj["name"], json.dumps(args, ensure_ascii=False))


def _calls(data: Any, names: set[str], tagged: bool = False) -> list[dict[str, Any]]:
    """The calls in a JSON value: one object, or an array of them (all calls, or none counts)."""
    objs = data if isinstance(data, list) and data else [data]
    calls = [_call(o, names, tagged) for o in objs]
    return calls if all(calls) else []  # type: ignore[return-value]


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _unfence(body: str) -> str:
    """The JSON inside a block, without the fence some models put around it even there."""
    m = _FENCE.fullmatch(body.strip())
    return m.group(2).strip() if m and m.group(1).lower() in _CALL_FENCES else body


# -- a call cut short ----------------------------------------------------------------------------------
def _top_keys(text: str) -> tuple[dict[str, tuple[int, int | None]], bool]:
    """The keys of the JSON object that `text` begins (after `{`), each with where its value starts and
    ends (None: it runs to the end of `text`), and whether the object was closed."""
    keys: dict[str, tuple[int, int | None]] = {}
    depth, i, n = 0, 0, len(text)
    key, key_start, value_start = None, None, None
    expect_key = False
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if depth == 1 and expect_key:
                key_start, key = i, None
                if j < n:
                    key = _loads(text[i:j + 1])
                expect_key = False
            i = j + 1
            continue
        if c in "{[":
            depth += 1
            if depth == 1:
                expect_key = True
        elif c in "}]":
            if depth == 1 and key is not None and value_start is not None:
                keys[key] = (value_start, i)
            depth -= 1
            if depth == 0:
                return keys, True
        elif depth == 1 and c == ":" and key_start is not None:
            value_start = i + 1
        elif depth == 1 and c == ",":
            if key is not None and value_start is not None:
                keys[key] = (value_start, i)
            key, key_start, value_start, expect_key = None, None, None, True
        i += 1
    if key is not None and value_start is not None:
        keys[key] = (value_start, None)
    return keys, False


def _cut_string(text: str) -> str:
    """A JSON string, perhaps cut short (from its opening quote on), decoded as far as it goes."""
    whole = _loads(text)
    if isinstance(whole, str):
        return whole
    body = text[1:]
    escape = re.search(r"(\\+)(u[0-9a-fA-F]{0,3})?$", body)
    if escape and len(escape.group(1)) % 2:  # an escape cut in the middle: drop it
        body = body[:escape.end(1) - 1]
    decoded = _loads(f'"{body}"')
    # half a surrogate pair (an emoji cut between its two escapes) cannot be sent on as UTF-8
    return decoded.encode("utf-8", "ignore").decode() if isinstance(decoded, str) else ""


def _cut_call(text: str, names: set[str], announced: bool) -> dict[str, Any] | None:
    """The call that `text` (an object cut short) was being written as, its arguments as far as they
    go; None when it is not one. Under a forced call (`announced`) the grammar guarantees a call, so a
    name cut short is the one offered name it begins; in free text the name must be whole and
    `arguments` begun."""
    text = text.lstrip()
    if not text.startswith("{"):
        if announced and not text and len(names) == 1:
            return _new_call(next(iter(names)), "")
        return None
    keys, closed = _top_keys(text)
    if closed:  # a whole object that did not parse: malformed, not cut
        return None
    raw = _value(text, keys["name"]).rstrip() if "name" in keys else ""
    whole, name = _loads(raw), None
    if isinstance(whole, str):
        name = whole if whole in names else None
    elif announced:  # the name not yet (all) written
        begun = [n for n in names if n.startswith(_cut_string(raw) if raw.startswith('"') else "")]
        name = begun[0] if len(begun) == 1 else None
    if name is None or (not announced and "arguments" not in keys):
        return None
    arguments = _value(text, keys["arguments"]) if "arguments" in keys else ""
    if arguments.startswith('"'):  # arguments as JSON text: that text, as far as it goes
        arguments = _cut_string(arguments.rstrip())
    return _new_call(name, arguments)


def _value(text: str, span: tuple[int, int | None]) -> str:
    """A key's value as written: whole, or as far as it goes (its trailing space may be more to come)."""
    start, end = span
    return text[start:end].strip() if end is not None else text[start:].lstrip()


# -- the shapes a call is written in -----------------------------------------------------------------
def _tagged(text: str, names: set[str], cut: bool) -> Parsed | None:
    calls, last_cut = [], False
    for m in _BLOCK.finditer(text):
        body = _unfence(m.group(1))
        found = _calls(_loads(body), names, tagged=True)
        if not found and cut and not m.group(0).endswith("</tool_call>"):  # open: the answer was cut in it
            partial = _cut_call(body, names, announced=False)
            found, last_cut = ([partial], True) if partial else ([], False)
        calls += found
    return Parsed(_BLOCK.sub("", text).strip(), calls, last_cut) if calls else None


def _fenced(text: str, names: set[str], cut: bool) -> Parsed | None:
    calls, spans, last_cut = [], [], False
    for m in _FENCE.finditer(text):
        if m.group(1).lower() not in _CALL_FENCES:
            continue
        found = _calls(_loads(m.group(2).strip()), names)
        if not found and cut and not m.group(3):  # the fence was still open when the answer was cut
            partial = _cut_call(m.group(2), names, announced=False)
            found, last_cut = ([partial], True) if partial else ([], False)
        if found:
            calls += found
            spans.append(m.span())
    return Parsed(_without(text, spans), calls, last_cut) if calls else None


def _bare(text: str, names: set[str], cut: bool) -> Parsed | None:
    """Call objects (or arrays of them) in the text itself; what is fenced is code, not a call."""
    masked = _FENCE.sub(lambda m: " " * len(m.group(0)), text)
    calls, spans, last_cut = [], [], False
    i = 0
    while (start := _OPENS.search(masked, i)) is not None:
        i = start.start()
        try:
            data, end = _DECODER.raw_decode(masked, i)
        except ValueError:
            partial = _cut_call(masked[i:], names, announced=False) if cut else None
            if partial:
                calls.append(partial)
                spans.append((i, len(text)))
                last_cut = True
                break
            i += 1
            continue
        found = _calls(data, names)
        if found:
            calls += found
            spans.append((i, end))
        i = end  # a value that is not a call is skipped whole: what it holds is its data
    return Parsed(_without(text, spans), calls, last_cut) if calls else None


def _without(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` less the spans of its calls: the words around them, a space where a call stood mid-line."""
    out, at = "", 0
    for start, end in [*spans, (len(text), len(text))]:
        piece = text[at:start]
        if out and piece:
            left, right = out.rstrip(" \t"), piece.lstrip(" \t")
            out = left + (" " if left[-1:] not in ("\n", "") and right[:1] not in ("\n", "") else "") + right
        else:
            out += piece
        at = end
    return out.strip()


def parse(text: str, names: set[str], forced: bool = False, parallel: bool = True, cut: bool = False) -> Parsed:
    """The tool calls in `text` (to functions in `names`) and the words left around them. `forced`: the
    answer was constrained to a call of one of `names`; `cut`: max_tokens ended it."""
    if forced:
        calls = _calls(_loads(text), names, tagged=True)
        if calls:
            return Parsed("", calls if parallel else calls[:1])
        partial = _cut_call(text, names, announced=True) if cut else None
        if partial:
            return Parsed("", [partial], cut=True)
    for shape in (_tagged, _fenced, _bare):
        parsed = shape(text, names, cut)
        if parsed:
            if not parallel and len(parsed.calls) > 1:
                return Parsed(parsed.content, parsed.calls[:1])
            return parsed
    return Parsed(text, [])


def read_answer(opts: RouteOptions, text: str, finish_reason: str | None) -> Answer:
    """An answer's words, its tool calls (None when the request offered no tools or none was made) and
    its finish_reason: "tool_calls" when it made calls, "length" when max_tokens cut its last call
    (which comes with its arguments as far as they were written), else the engine's."""
    if not opts.wants_tools:
        return Answer(text, None, finish_reason)
    forced = forced_tools(tuple(opts.tools), opts.tool_choice)
    names = {t.function.name for t in (forced or opts.tools)}
    parsed = parse(text, names, bool(forced), opts.parallel_tool_calls, cut=finish_reason == "length")
    if not parsed.calls:
        return Answer(text, None, finish_reason)
    return Answer(parsed.content, parsed.calls, "length" if parsed.cut else "tool_calls")

