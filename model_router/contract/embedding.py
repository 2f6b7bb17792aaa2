"""The embedding model's interface: texts in (one row of the model's batch dimension each); per text, its
unit-length vector and the tokens the model read for it. The router's own request for vectors is
`request.Embed` (options.embed), within the limits below."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .tensors import Get, Tensors, strings

EMBED = "embed"  # the router's option that asks for vectors instead of an answer (request.RouteOptions.embed)
INPUTS = ("text",)
OUTPUTS = ("embeddings", "num_input_tokens")
# Texts in one request: the model's max_batch_size (its config.pbtxt). A text of 500 tokens takes about
# 0.7 s on 2 cores: a full request of long texts (~45 s) stays inside the router's default timeout (120 s).
MAX_INPUTS = 64
MAX_INPUT_TOKENS = 512  # multilingual-e5-small's positions, its special tokens included
# A bound on a request's size, checked before the model counts tokens (the limit that binds): the
# tokenizer folds runs of spaces, so characters alone cannot say whether a text fits.
MAX_INPUT_CHARS = 16_000


@dataclass(frozen=True)
class EmbedRequest:
    """The texts to embed, in order."""

    texts: tuple[str, ...]
    outputs = OUTPUTS

    def encode(self) -> Tensors:
        return {"text": strings(*self.texts).reshape(-1, 1)}

    @classmethod
    def decode(cls, get: Get) -> EmbedRequest:
        """Every row's text: valid UTF-8 with something in it (InputError names `text[i]`)."""
        rows = get("text")
        if rows is None or rows.size == 0:
            raise InputError("text", "required: at least one text to embed")
        texts = []
        for i, raw in enumerate(rows.reshape(-1)):
            try:
                text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            except UnicodeDecodeError as exc:
                raise InputError(f"text[{i}]", f"not valid UTF-8 (bad byte at position {exc.start})") from None
            if not text.strip():
                raise InputError(f"text[{i}]", "empty")
            texts.append(text)
        return cls(tuple(texts))


def check_tokens(counts: list[int], limit: int = MAX_INPUT_TOKENS) -> None:
    """Each text within the model's positions (InputError names `text[i]` and the limit): a longer one
    would be cut, and its vector would not be the whole text's."""
    for i, count in enumerate(counts):
        if count > limit:
            raise InputError(f"text[{i}]", f"{count} tokens exceeds the limit of {limit} tokens", limit)


@dataclass(frozen=True)
class EmbedOutput:
    """One vector per text ([n, dim] float32, unit length) and the tokens read for each."""

    vectors: np.ndarray = field(compare=False)  # arrays do not compare with ==: tests compare the values
    tokens: tuple[int, ...]

    def encode(self) -> Tensors:
        return {"embeddings": np.asarray(self.vectors, dtype=np.float32).reshape(len(self.tokens), -1),
                "num_input_tokens": np.array(self.tokens, dtype=np.uint32).reshape(-1, 1)}

    @classmethod
    def decode(cls, out: Tensors) -> EmbedOutput:
        tokens = tuple(int(n) for n in out["num_input_tokens"].reshape(-1))
        return cls(np.asarray(out["embeddings"], dtype=np.float32).reshape(len(tokens), -1), tokens)
