"""QueryClassifier: validate a query, then predict use case, language, complexity and modality."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..contract.classifier import Classification
from ..contract.request import attachment_kinds, check_query, decode_text
from ..vocabulary import COMPLEXITIES, USE_CASES, modality_of
from .features import featurize
from .langid import PAIRS, LanguageIdentifier, NaiveBayes
from .linear import predict_proba, softmax

DEFAULT_MAX_CHARS = 8000
ARTIFACT = Path(__file__).resolve().parent / "artifacts" / "classifier.npz"


class QueryClassifier:
    """Loads the trained artifact once; `classify` is pure CPU work of well under a millisecond,
    plus a multilingual-e5 embedding (10-17 ms on 2 cores) for the third of queries the fast model is unsure of."""

    def __init__(self, artifact: Path | str = ARTIFACT, max_chars: int = DEFAULT_MAX_CHARS,
                 use_embeddings: bool = True) -> None:
        data = dict(np.load(artifact, allow_pickle=False))
        self.meta = json.loads(str(data["meta"]))
        self.heads = {name: (data[f"{name}_W"].astype(np.float32), data[f"{name}_b"]) for name in ("use_case", "complexity")}
        # Temperatures fitted on out-of-fold predictions (scripts/train_classifier.py): calibrated confidences.
        self.temperature = {k: float(v) for k, v in self.meta.get("temperature", {}).items()}
        self.langid = LanguageIdentifier({s: NaiveBayes.from_arrays(data, f"nb_{s}") for s in PAIRS})
        self.max_chars = max_chars
        # Cascade: below this confidence the fast model asks the embedding head for a second opinion.
        self.cascade_below = float(self.meta.get("cascade_below", 0.0))
        self.cascade_mix = float(self.meta.get("cascade_mix", 0.5))  # the fast head's weight in the mix
        self.embedder = None
        if use_embeddings and "e5_W" in data:
            from .embedding import Embedder

            self.embedder = Embedder()
            self.e5_head = (data["e5_W"].astype(np.float32), data["e5_b"])

    def classify(self, text: str | bytes | None, attachments: list[str] | tuple[str, ...] | None = ()) -> Classification:
        text, kinds = decode_text(text, self.max_chars), attachment_kinds(attachments or ())
        check_query(text, kinds)
        uc_p = self._head("use_case", text, kinds, shape=False)
        if self.embedder is not None and uc_p.max() < self.cascade_below:
            W, b = self.e5_head
            e5_p = softmax((self.embedder.features(text, kinds) @ W + b) / self.temperature.get("e5", 1.0))
            uc_p = self.cascade_mix * uc_p + (1 - self.cascade_mix) * e5_p
        cx_p = self._head("complexity", text, kinds, shape=True)
        language, lang_conf = self.langid.identify(text) if text.strip() else ("en", 0.0)
        uc = USE_CASES[int(uc_p.argmax())]
        return Classification(
            use_case=uc, language=language, complexity=COMPLEXITIES[int(cx_p.argmax())], modality=modality_of(kinds),
            confidence={"use_case": round(float(uc_p.max()), 4), "language": round(lang_conf, 4),
                        "complexity": round(float(cx_p.max()), 4), "modality": 1.0},
            use_case_scores={u: round(float(p), 4) for u, p in zip(USE_CASES, uc_p)})

    def _head(self, name: str, text: str, kinds: tuple[str, ...], shape: bool) -> np.ndarray:
        W, b = self.heads[name]
        idx, val = featurize(text, kinds, char_ngrams=tuple(self.meta["char_ngrams"][name]), shape=shape)
        return predict_proba(W, b, idx, val, self.temperature.get(name, 1.0))
