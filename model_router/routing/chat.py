"""Conversations as a model takes them: the turns through a tokenizer's chat template.

Our backends apply their own template (they get the turns as `messages`: transformers the tokenizer's,
llamacpp the GGUF file's); the vLLM backend takes a raw prompt, so for vLLM-backend targets the router
renders the prompt itself with the model's tokenizer (registry `tokenizer`), as the OpenAI frontends
do. A model is never sent an untemplated prompt: without its template, rendering fails and says why.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..errors import InputError, ServingError
from ..registry import ModelSpec
from ..tools.prompt import template_turn


@lru_cache(maxsize=8)
def _template(name: str) -> Any:
    """The tokenizer `name` from a folder or the local Hugging Face cache (looked up again after a miss)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, local_files_only=True)


def tokenizer_of(spec: ModelSpec) -> Any:
    """The tokenizer whose chat template renders `spec`'s prompts; ServingError naming the model and
    the tokenizer when it cannot be had here or has no chat template."""
    try:
        tok = _template(spec.tokenizer)
    except Exception as exc:  # not a folder, not in the local cache, or unreadable
        raise ServingError(f"model {spec.name!r}: its tokenizer {spec.tokenizer!r} (registry `tokenizer`) cannot be "
                           f"found here ({type(exc).__name__}: {exc}); its prompts are rendered with that "
                           "tokenizer's chat template, so the model cannot be served without it") from None
    if not getattr(tok, "chat_template", None):
        raise ServingError(f"model {spec.name!r}: its tokenizer {spec.tokenizer!r} has no chat template to "
                           "render its prompts with")
    return tok


def render(spec: ModelSpec, turns: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The prompt of `turns` ({role, content}; content may be a list of parts) through the chat template
    of `spec`'s tokenizer, ending where the assistant's answer starts."""
    tok = tokenizer_of(spec)
    try:
        return tok.apply_chat_template([template_turn(t) for t in turns], tools=tools or None, tokenize=False,
                                       add_generation_prompt=True)
    except Exception as exc:  # the template refuses these turns (its own raise_exception, e.g. roles out of order)
        raise InputError("messages", f"the chat template of model {spec.name!r} refuses this conversation: "
                                     f"{exc}") from None
