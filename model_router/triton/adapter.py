"""What every model.py needs from Triton: config parameters, request inputs, responses and errors.

Imported only inside a Python-backend stub (it imports triton_python_backend_utils).
"""
from __future__ import annotations

import faulthandler
import gc
import os
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from ..contract.errors import ErrorKind, WireError
from ..contract.tensors import Tensors

FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL

# A stub that crashes says where, every thread's Python stack, in Triton's log (the stub's stderr):
# Triton itself reports only that the stub is gone.
faulthandler.enable(all_threads=True)


def collect_no_more() -> None:
    """Called as a model unloads: its stub is about to exit, and a garbage collection now may free
    pb_utils objects whose Triton side is already gone (a stub's SIGSEGV while "Garbage-collecting"
    at unload, and then tritonserver's in ModelInstanceFinalize, seen with Triton 24.10)."""
    gc.disable()
    gc.freeze()


def param(config: dict[str, Any], key: str, default: str = "") -> str:
    """A config.pbtxt string parameter, with environment variables (${TMR_MODELS}) expanded."""
    return os.path.expandvars(config.get("parameters", {}).get(key, {}).get("string_value", default))


def setting(config: dict[str, Any], key: str, default: str) -> str:
    """Environment TMR_<KEY> wins over the config parameter, which wins over the default."""
    return os.environ.get(f"TMR_{key.upper()}", param(config, key, default))


def error_response(exc: BaseException, model: str) -> Any:
    """The error as the contract's WireError (a JSON kind in the message) under the Triton code of its
    kind. A bug (kind internal) is logged and named after the model; the model serves on either way."""
    wire = WireError.of(exc, model)
    if wire.kind is ErrorKind.INTERNAL:
        pb_utils.Logger.log_error(f"{model}: {exc!r}")
    code = getattr(pb_utils.TritonError, wire.triton_code, pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(wire.to_message(), code))


def getter(request: Any):
    """A contract `Get` over a request's input tensors."""
    def get(name: str) -> np.ndarray | None:
        tensor = pb_utils.get_input_tensor_by_name(request, name)
        return None if tensor is None else tensor.as_numpy()
    return get


def response(tensors: Tensors) -> Any:
    """A response of the contract's encoded outputs."""
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(k, v) for k, v in tensors.items()])


class RequestModel:
    """A model that answers each request on its own: `answer` builds the response, and an exception
    becomes that request's error response (the model serves on)."""

    name = "model"

    def execute(self, requests: list) -> list:
        return [self._answer(r) for r in requests]

    def _answer(self, request: Any) -> Any:
        try:
            return self.answer(request)
        except Exception as exc:
            return error_response(exc, self.name)

    def answer(self, request: Any) -> Any:
        raise NotImplementedError

    def finalize(self) -> None:
        collect_no_more()
