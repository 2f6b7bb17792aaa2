"""No runtime module outside model_router/contract spells a wire key as a string literal: the
names that travel between processes are the contract's, used through its types and constants.

Wire keys are read from the contract itself (WIRE_SOURCES): every tensor name of every interface,
the request and response parameters and the router options of contract.control, the router's
options (RouteOptions' fields) and the JSON keys of an error message.

The rule. A key that is a word of its own (`routing`, `text_output`, `heartbeat_s`, `tmr_cancel`...)
is flagged wherever a runtime module spells it, docstrings aside. A key that is also an everyday
word (GENERIC: `text`, `audio`, `messages`, `tools`...) is flagged only where it can only mean a
tensor: an argument of a tensor call (pb_utils.Tensor, InferInput, InferRequestedOutput,
get_input_tensor_by_name, as_numpy, the contract's `one`/`get`), a requested output or a request
parameter, or the key of a tensor being built (`{"text": strings(...)}`). ALLOWED lists the few
(file, key) pairs that are not our wire though they spell one of its words.
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from model_router.contract import classifier, control, embedding, errors, generation, media, metrics, router
from model_router.contract.request import RouteOptions

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("model_router", "python_backends", "openai_front", "launcher", "client")
CONTRACT = ROOT / "model_router" / "contract"


# Each contract module that puts names on the wire, and its names.
WIRE_SOURCES: dict[str, Callable[[], Iterable[str]]] = {
    "router": lambda: (*router.INPUTS, *router.OUTPUTS),
    "request": lambda: RouteOptions.model_fields,
    "generation": lambda: (*generation.INPUTS, *generation.OUTPUTS),
    "classifier": lambda: (*classifier.INPUTS, *classifier.OUTPUTS),
    "media": lambda: (*media.INPUTS, *media.OUTPUTS),
    "embedding": lambda: (embedding.EMBED, *embedding.INPUTS, *embedding.OUTPUTS),
    "metrics": lambda: (*metrics.INPUTS, *metrics.OUTPUTS),
    "control": lambda: control.KEYS,
    "errors": lambda: errors.KEYS,
}


def wire_keys() -> frozenset[str]:
    return frozenset(key for names in WIRE_SOURCES.values() for key in names())


# Wire keys that are also everyday words: flagged only where they can only name a tensor.
GENERIC = frozenset({
    # plain words, and everyday Python names
    "text", "options", "images", "times", "frames", "segments", "confidence", "attachments", "kind", "message",
    "field", "ops", "applied", "health", "cache", "prefer", "model", "feedback", "tenant",
    # our vocabulary: attachment kinds and the classifier's heads, named throughout routing
    "image", "audio", "video", "language", "use_case", "complexity", "modality",
    # OpenAI's names, which the front and the chat templates use for their own JSON
    "messages", "stream", "tools", "tool_calls", "tool_choice", "parallel_tool_calls", "response_format",
    "finish_reason",
})

# (file, key): spelled there, and not our wire.
ALLOWED = {
    # OpenAI's response bodies, which carry the routing decision and the visemes as fields of their own
    ("openai_front/responses.py", "routing"), ("openai_front/responses.py", "visemes"),
    # The admin API's key fields (tenants.keys.KeyFields), one of them named as the router option it becomes
    ("client/admin_cli.py", "cache_namespace"),
}

TENSOR_CALLS = {"Tensor", "InferInput", "InferRequestedOutput", "get_input_tensor_by_name",
                "get_output_tensor_by_name", "as_numpy", "one", "one_text"}
TENSOR_KEYWORDS = {"requested_output_names", "outputs", "parameters"}
TENSOR_BUILDERS = {"strings", "flag", "array", "asarray"}


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _in_tensor_position(node: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    parent = parents.get(node)
    if isinstance(parent, ast.Call):  # an argument (the bare `get` is the contract's Get, not dict.get)
        return _name(parent.func) in TENSOR_CALLS or isinstance(parent.func, ast.Name) and parent.func.id == "get"
    if isinstance(parent, ast.Dict) and node in parent.keys:
        value = parent.values[parent.keys.index(node)]
        if isinstance(value, ast.Call) and _name(value.func) in TENSOR_BUILDERS:
            return True
    while isinstance(parent, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        parent = parents.get(parent)
    return isinstance(parent, ast.keyword) and parent.arg in TENSOR_KEYWORDS


def spelled(source: str, keys: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(line, key) of each wire key `source` spells, by the rule above."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or node.value not in keys:
            continue
        if id(node) in docs or node.value in GENERIC and not _in_tensor_position(node, parents):
            continue
        yield node.lineno, node.value


def _runtime_files() -> list[Path]:
    files = [p for pkg in RUNTIME for p in (ROOT / pkg).rglob("*.py") if CONTRACT not in p.parents]
    return sorted(files + list(ROOT.glob("model_repository/*/1/model.py")))


def _found() -> dict[tuple[str, str], list[int]]:
    keys, found = wire_keys(), {}
    for path in _runtime_files():
        rel = str(path.relative_to(ROOT))
        for line, key in spelled(path.read_text(), keys):
            found.setdefault((rel, key), []).append(line)
    return found


def test_no_runtime_module_spells_a_wire_key() -> None:
    bad = [f"{file}:{line}: {key!r}" for (file, key), lines in sorted(_found().items())
           if (file, key) not in ALLOWED for line in lines]
    assert not bad, "wire keys spelled outside model_router/contract (use its types and constants):\n" + "\n".join(bad)


def test_every_allowance_is_still_needed() -> None:
    stale = sorted(ALLOWED - set(_found()))
    assert not stale, f"no longer spelled there: remove from ALLOWED: {stale}"


def test_generic_words_are_wire_keys() -> None:
    assert GENERIC <= wire_keys(), f"not wire keys (remove them): {sorted(GENERIC - wire_keys())}"


def test_every_contract_module_with_tensors_is_a_source() -> None:
    building = {p.stem for p in CONTRACT.glob("*.py") if "Tensors" in p.read_text()} - {"tensors"}
    assert building <= set(WIRE_SOURCES), f"add to WIRE_SOURCES: {sorted(building - set(WIRE_SOURCES))}"


@pytest.mark.parametrize("line", [
    'out["routing"]', '"routing" in out', 'x = "text_output"', 'params.get("triton_final_response")',
    '{"heartbeat_s": 0.5}', 'f(parameters={"tmr_cancel": rid})', 'pb.Tensor("text", arr)',
    'get_input_tensor_by_name(request, "options")', 'pb.InferenceRequest(requested_output_names=["audio"])',
    '{"messages": strings(turns)}', 'one(get, "image")', 'get("video")', 'result.as_numpy("classification")',
])
def test_the_rule_flags_a_wire_key(line: str) -> None:
    assert list(spelled(line, wire_keys())), line


@pytest.mark.parametrize("line", [
    '{"type": "text", "text": prompt}', 'turn["tool_calls"]', 'InputError("audio", "required")',
    'if "image" in attachments: pass', 'options.get("stream")', 'def f():\n    """routing"""',
    '"text_outputs"',
])
def test_the_rule_leaves_other_words(line: str) -> None:
    assert not list(spelled(line, wire_keys())), line
