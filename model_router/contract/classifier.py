"""The classifier's interface: a batch of texts (and each one's attachment kinds) in; per text,
the four heads, their confidences, the use-case scores and the whole Classification as JSON."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..vocabulary import USE_CASES
from .tensors import Get, Tensors, texts

MODEL = "query_classifier"
HEADS = ("use_case", "language", "complexity", "modality")
INPUTS = ("text", "attachments")
OUTPUTS = (*HEADS, "confidence", "use_case_scores", "classification")


@dataclass
class Classification:
    use_case: str
    language: str
    complexity: str
    modality: str
    confidence: dict[str, float]
    use_case_scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


@dataclass(frozen=True)
class ClassifyRequest:
    """One text with its attachment kinds (the model's batch dimension holds one row per request)."""

    text: str | bytes  # bytes as they are (the classifier checks the UTF-8)
    kinds: tuple[str, ...] = ()
    outputs = ("classification",)

    def encode(self) -> Tensors:
        raw = self.text if isinstance(self.text, bytes) else self.text.encode()
        tensors = {"text": np.array([[raw]], dtype=np.object_)}
        if self.kinds:
            tensors["attachments"] = np.array([[k.encode() for k in self.kinds]], dtype=np.object_)
        return tensors

    @staticmethod
    def decode_batch(get: Get) -> list[tuple[bytes, list[bytes]]]:
        """Each row's raw text and attachment kinds (the classifier checks them)."""
        rows = get("text").reshape(-1)
        att = get("attachments")
        kinds = att.reshape(len(rows), -1) if att is not None else [[]] * len(rows)
        return [(t, list(k)) for t, k in zip(rows, kinds)]


def encode_classifications(results: list[Classification]) -> Tensors:
    rows = [r.to_dict() for r in results]
    out = {h: np.array([[d[h].encode()] for d in rows], dtype=np.object_) for h in HEADS}
    out["confidence"] = np.array([[d["confidence"][h] for h in HEADS] for d in rows], dtype=np.float32)
    out["use_case_scores"] = np.array([[d["use_case_scores"][u] for u in USE_CASES] for d in rows], dtype=np.float32)
    out["classification"] = np.array([[r.to_json().encode()] for r in results], dtype=np.object_)
    return out


def decode_classification(out: Tensors) -> Classification:
    return Classification(**json.loads(texts(out.get("classification"))[0]))


__all__ = ["ClassifyRequest", "encode_classifications", "decode_classification"]
