"""BYTES tensors as the router builds and reads them: strings in, strings out."""
from __future__ import annotations

import numpy as np


def strings(*values: bytes | str) -> np.ndarray:
    """A BYTES tensor of `values` (str encoded as UTF-8)."""
    return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=np.object_)


def texts(arr: np.ndarray | None) -> list[str]:
    """A BYTES tensor's elements as str (invalid UTF-8 replaced); [] when absent."""
    if arr is None:
        return []
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]
