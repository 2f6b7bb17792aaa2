"""Text generation: the vLLM backend's contract, which every text generator here shares.

Inputs: `text_input`, `stream`, `sampling_parameters` (JSON), `exclude_input_in_output`, the vLLM
backend's `image` (base64, one per image) and additional-output switches (`return_finish_reason`,
`return_num_input_tokens`, `return_num_output_tokens`, `return_cumulative_logprob`); ours also
takes `messages` (a conversation as JSON, rendered by the backend's chat template) and `tools` (the
OpenAI tool definitions as JSON, for a backend whose chat template writes them itself). Outputs:
`text_output`, and those the request switched on, on every response (output tokens counted per
response, as vLLM counts them). `GenerateRequest` and `GenerateOutput` each own both halves.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pydantic import ValidationError

from ..errors import InputError
from .limits import ModelLimits
from .request import MAX_TURNS, decode_text, parse_messages
from .sampling import SamplingParams, parse_sampling_parameters
from .tensors import Get, Tensors, flag, one, one_text, strings, texts
from .tools import MAX_TOOLS, Tool

FINISH_REASONS = ("stop", "length", "abort")
ADDITIONAL = ("finish_reason", "num_input_tokens", "num_output_tokens", "cumulative_logprob")
# What the router asks every text generator to report: why it stopped and its token counts (usage).
USAGE_REPORTS = frozenset(ADDITIONAL[:3])
PROMPT, MESSAGES, SAMPLING, TOOLS = "text_input", "messages", "sampling_parameters", "tools"
# A model config's tensors: (name, Triton data type, optional) in, (name, data type, dims) out.
CONFIG_INPUTS = ((PROMPT, "TYPE_STRING", False), ("stream", "TYPE_BOOL", True), (SAMPLING, "TYPE_STRING", True),
                 ("exclude_input_in_output", "TYPE_BOOL", True),
                 *((f"return_{name}", "TYPE_BOOL", True) for name in ADDITIONAL),
                 (MESSAGES, "TYPE_STRING", True), (TOOLS, "TYPE_STRING", True))
CONFIG_OUTPUTS = (("text_output", "TYPE_STRING", [-1]), ("finish_reason", "TYPE_STRING", [-1]),
                  ("cumulative_logprob", "TYPE_FP32", [-1]), ("num_input_tokens", "TYPE_UINT32", [1]),
                  ("num_output_tokens", "TYPE_UINT32", [-1]))
INPUTS = tuple(name for name, *_ in CONFIG_INPUTS)
OUTPUTS = tuple(name for name, *_ in CONFIG_OUTPUTS)


@dataclass(frozen=True)
class GenerateRequest:
    prompt: str
    # Typed once decoded; a client that leaves the checks to the engine may send its parameters as they are.
    sampling: SamplingParams | dict[str, Any] = field(default_factory=SamplingParams)
    stream: bool = False
    exclude_input_in_output: bool = True
    messages: list[dict[str, Any]] | None = None
    images: tuple[bytes, ...] = ()
    tools: list[dict[str, Any]] | None = None  # OpenAI tool definitions, for the backend's chat template
    # Additional outputs, switched on per request as the vLLM backend does.
    returns: frozenset[str] = frozenset()

    def encode(self) -> Tensors:
        tensors = {"text_input": strings(self.prompt), "stream": flag(self.stream),
                   "exclude_input_in_output": flag(self.exclude_input_in_output),
                   "sampling_parameters": strings(json.dumps(self.sampling.wire() if isinstance(
                       self.sampling, SamplingParams) else self.sampling, ensure_ascii=False))}
        if self.messages is not None:
            tensors["messages"] = strings(json.dumps(self.messages, ensure_ascii=False))
        if self.tools:
            tensors["tools"] = strings(json.dumps(self.tools, ensure_ascii=False))
        if self.images:
            tensors["image"] = np.array([base64.b64encode(i) for i in self.images], dtype=np.object_)
        for name in self.returns:
            tensors[f"return_{name}"] = flag(True)
        return tensors

    @classmethod
    def decode(cls, get: Get, max_chars: int, limits: ModelLimits | None = None) -> GenerateRequest:
        """The request as a model receives it, validated within the model's `limits` (its prompt's
        tokens are counted by its engine, after the chat template)."""
        raw = one(get, "text_input")
        if raw is None:
            raise InputError("text_input", "required")
        prompt = decode_text(raw, max_chars, "text_input")
        if not prompt.strip():
            raise InputError("text_input", "empty")
        turns = parse_messages(one(get, "messages"), max_chars, MAX_TURNS + 1)  # + the router's system turn for tools
        sampling = parse_sampling_parameters(one_text(get, "sampling_parameters"), limits)
        return cls(prompt, sampling, bool(one(get, "stream", False)),
                   bool(one(get, "exclude_input_in_output", False)),
                   [t.as_turn() for t in turns] if turns else None, _images(get),
                   tools=_tools(one_text(get, "tools")) or None,
                   returns=frozenset(n for n in ADDITIONAL if bool(one(get, f"return_{n}", False))))

    @property
    def wants_logprob(self) -> bool:
        return "cumulative_logprob" in self.returns

    @property
    def outputs(self) -> list[str]:
        """The output tensors to ask for."""
        return ["text_output", *sorted(self.returns)]


def _images(get: Get) -> tuple[bytes, ...]:
    """The `image` input: each element one image, base64 (as the vLLM backend takes them)."""
    arr = get("image")
    if arr is None:
        return ()
    try:
        return tuple(base64.b64decode(value, validate=True) for value in arr.reshape(-1))
    except (ValueError, TypeError):
        raise InputError("image", "not valid base64") from None


def _tools(raw: str) -> list[dict[str, Any]]:
    """The `tools` input: a JSON array of OpenAI tool definitions ([] when absent)."""
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InputError("tools", f"not JSON: {exc}") from None
    if not isinstance(data, list) or len(data) > MAX_TOOLS:
        raise InputError("tools", f"must be a JSON array of at most {MAX_TOOLS} tool definitions")
    out = []
    for i, item in enumerate(data):
        try:
            out.append(Tool.model_validate(item).model_dump(exclude_none=True))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(f"tools[{i}]{'.' + where if where else ''}", err["msg"]) from None
    return out


@dataclass(frozen=True)
class GenerateOutput:
    """One response: its text, and what the engine knows (None when not asked for or not known yet)."""

    text: str = ""
    finish_reason: str | None = None
    num_input_tokens: int | None = None
    num_output_tokens: int | None = None
    cumulative_logprob: float | None = None

    def encode(self, returns: frozenset[str]) -> Tensors:
        tensors = {"text_output": strings(self.text)}
        if "finish_reason" in returns:  # an empty string until the last response, as vLLM sends None
            tensors["finish_reason"] = strings(self.finish_reason or "")
        for name in ("num_input_tokens", "num_output_tokens"):
            if name in returns:
                tensors[name] = np.array([getattr(self, name) or 0], dtype=np.uint32)
        if "cumulative_logprob" in returns:
            tensors["cumulative_logprob"] = np.array([self.cumulative_logprob or 0.0], dtype=np.float32)
        return tensors

    @classmethod
    def decode(cls, out: Tensors) -> GenerateOutput:
        reason = "".join(texts(out.get("finish_reason")))
        reason = None if reason in ("", "None") else reason  # the vLLM backend sends str(None) until the end

        def number(name: str, kind: type) -> Any:
            arr = out.get(name)
            return None if arr is None or arr.size == 0 else kind(arr.reshape(-1)[0])

        return cls("".join(texts(out.get("text_output"))), reason, number("num_input_tokens", int),
                   number("num_output_tokens", int), number("cumulative_logprob", float))
