"""The router's metrics model (tmr_metrics): metric operations in, how many were applied out.

An operation is [family, how, value, labels]; the router batches them and ships them through BLS,
since a pb_utils metric call beside its own BLS calls crashed its stub (triton.metrics)."""
from __future__ import annotations

import json
from dataclasses import dataclass
import numpy as np

from ..errors import InputError
from .request import decode_text
from .tensors import Get, Tensors, one

MODEL = "tmr_metrics"
MAX_OPS_CHARS = 8 << 20
INPUTS, OUTPUTS = ("ops",), ("applied",)


@dataclass(frozen=True)
class MetricOps:
    ops: tuple[tuple[str, str, float, dict[str, str]], ...]
    outputs = ("applied",)

    def encode(self) -> Tensors:
        return {"ops": np.array([json.dumps(self.ops).encode()], dtype=np.object_)}

    @classmethod
    def decode(cls, get: Get) -> MetricOps:
        raw = decode_text(one(get, "ops", b""), MAX_OPS_CHARS, "ops")
        try:
            return cls(tuple((family, how, float(value), dict(labels)) for family, how, value, labels in json.loads(raw)))
        except (ValueError, TypeError) as exc:
            raise InputError("ops", f"expected JSON [[family, how, value, labels], ...]: {exc}") from None

    @staticmethod
    def applied(count: int) -> Tensors:
        return {"applied": np.array([count], np.int32)}


__all__ = ["MetricOps", "MODEL"]
