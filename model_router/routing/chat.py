"""Conversations as a model takes them: the turns through a tokenizer's chat template.

Our transformers backend applies its own tokenizer's template (it gets the turns as `messages`); the
vLLM backend takes a raw prompt, so for vLLM-backend targets the router renders the prompt itself with
the model's tokenizer (registry `tokenizer`), as the OpenAI frontends do.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _template(name: str) -> Any:
    """The tokenizer `name` from a folder or the local Hugging Face cache, if it has a chat template
    (None otherwise: looked up once, said once)."""
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    except Exception as exc:  # not in the local cache
        log.warning("no tokenizer %s here (%s): its model gets raw prompts", name, exc)
        return None
    return tok if getattr(tok, "chat_template", None) else None


def render(tokenizer: str, turns: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str | None:
    """The prompt of `turns` ({role, content}; content may be a list of parts) through `tokenizer`'s
    chat template, ending where the assistant's answer starts; None when the tokenizer or its template
    cannot be had here (the caller then sends the plain text)."""
    tok = _template(tokenizer)
    if tok is None:
        return None
    try:
        return tok.apply_chat_template(turns, tools=tools or None, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # a template that cannot take these turns (e.g. image parts)
        log.warning("chat template of %s refused the turns (%s): sending the raw prompt", tokenizer, exc)
        return None
