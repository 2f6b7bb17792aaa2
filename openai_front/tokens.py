"""Token counts for `usage`. The router does not return them, so we count them here.

A local model (its config's `model_path` names a folder with a tokenizer.json) is counted exactly as
our transformers backend feeds it: the conversation through its chat template, then its tokenizer;
the answer through the same tokenizer. Anything else (vLLM models named by hub id, an unloaded
model) is estimated at four characters a token, OpenAI's rule of thumb for English.
What the router adds to a prompt on its own (text read from an image, an avatar's persona) is not
counted: these are the tokens of what the client sent and got back.
"""
from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)
CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    exact: bool

    def as_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


class Estimate:
    exact = False

    def prompt(self, turns: list[dict[str, str]]) -> int:
        return sum(self.text(t["content"]) for t in turns)

    def text(self, text: str) -> int:
        return math.ceil(len(text) / CHARS_PER_TOKEN)


class Tokenizer:
    """A model folder's tokenizer.json and chat template (chat_template.jinja or tokenizer_config.json)."""

    exact = True

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer as HfTokenizer

        self._tokenizer = HfTokenizer.from_file(str(folder / "tokenizer.json"))
        config = _json(folder / "tokenizer_config.json")
        source = (folder / "chat_template.jinja").read_text() if (folder / "chat_template.jinja").exists() \
            else config.get("chat_template")
        self._template = _compile(source) if isinstance(source, str) else None
        self._specials = {k: v for k, v in config.items() if k in ("bos_token", "eos_token") and isinstance(v, str)}

    def prompt(self, turns: list[dict[str, str]]) -> int:
        if self._template is not None:
            try:
                return self.text(self._template.render(messages=turns, add_generation_prompt=True, **self._specials))
            except Exception as exc:  # a template that needs more than we give it: count the turns alone
                log.warning("chat template failed (%s); counting the turns' text alone", exc)
        return sum(self.text(t["content"]) for t in turns)

    def text(self, text: str) -> int:
        # Special tokens are in the rendered template already (as apply_chat_template tokenizes it).
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _compile(source: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(source)


class TokenCounter:
    """Per model, its tokenizer when it has a local one (found through its Triton config), else the estimate."""

    def __init__(self, model_config: Callable[[str], Awaitable[dict[str, Any] | None]], models_dir: Path) -> None:
        self._model_config = model_config
        self._models_dir = models_dir
        self._tokenizers: dict[str, Tokenizer] = {}

    async def counter(self, model: str | None) -> Tokenizer | Estimate:
        if not model:
            return Estimate()
        if model not in self._tokenizers:
            folder = self._folder(await self._model_config(model))
            if folder is None:
                return Estimate()  # not cached: the model may be loaded (and so readable) next time
            try:
                self._tokenizers[model] = Tokenizer(folder)
            except Exception as exc:  # a tokenizer we cannot read: estimate rather than fail the answer
                log.warning("%s: cannot read the tokenizer in %s (%s); estimating tokens", model, folder, exc)
                return Estimate()
        return self._tokenizers[model]

    def _folder(self, config: dict[str, Any] | None) -> Path | None:
        raw = ((config or {}).get("parameters", {}).get("model_path") or {}).get("string_value")
        if not raw:
            return None
        # Expanded as the backend expands it; TMR_MODELS is where the launcher keeps prepared weights.
        path = Path(os.path.expandvars(raw.replace("${TMR_MODELS}", str(self._models_dir))))
        return path if (path / "tokenizer.json").is_file() else None

    async def usage(self, model: str | None, turns: list[dict[str, str]], answer: str) -> Usage:
        counter = await self.counter(model)
        return Usage(counter.prompt(turns), counter.text(answer), counter.exact)
