"""Tensors as the contract builds and reads them: numpy arrays by name, no Triton types.

Each side wraps them in its own tensor class (pb_utils.Tensor in a stub, InferInput in a client);
a decoder reads through `Get`, a function from a tensor name to its array (None when absent).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import InputError

Tensors = dict[str, np.ndarray]
Get = Callable[[str], "np.ndarray | None"]


def strings(*values: bytes | str) -> np.ndarray:
    """A BYTES tensor of `values` (str encoded as UTF-8)."""
    return np.array([v.encode("utf-8") if isinstance(v, str) else v for v in values], dtype=np.object_)


def texts(arr: np.ndarray | None) -> list[str]:
    """A BYTES tensor's elements as str (invalid UTF-8 replaced); [] when absent."""
    if arr is None:
        return []
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]


def flag(value: bool) -> np.ndarray:
    return np.array([value], dtype=bool)


def one(get: Get, name: str, default: Any = None) -> Any:
    """The one element of tensor `name` (`default` when absent); InputError naming it when it holds more."""
    arr = get(name)
    if arr is None:
        return default
    values = arr.reshape(-1)
    if values.size != 1:
        raise InputError(name, f"expected exactly one element, got {values.size}")
    return values[0]


def one_text(get: Get, name: str, default: str = "") -> str:
    value = one(get, name)
    if value is None:
        return default
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def from_dict(tensors: Tensors) -> Get:
    """A `Get` over a dict of arrays."""
    return tensors.get
