"""Calls from the router to other models through BLS, each with a deadline.

When a target's stub process dies mid-request, Triton 24.10 never ends that request's BLS
response stream; reading it directly would hold a router worker forever. Read on a daemon
thread instead, and give up at the deadline. The pb_utils module is passed in, so that this
module imports without a stub (the unit tests drive `with_deadline` alone).
"""
from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np

from ..classifier import Classification
from ..errors import InputError, ServingError, TargetError
from ..registry import ModelSpec
from ..routing.targets import target_of

T = TypeVar("T")
_END = object()


class StreamTimeout(TimeoutError):
    """The stream did not finish before its deadline."""


def with_deadline(responses: Callable[[], Iterable[T]], timeout_s: float, on_timeout: Callable[[], None] = lambda: None,
                  clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """Yield what `responses()` yields, raising StreamTimeout once `timeout_s` have passed in all.

    `responses` is called on the reader thread, so a call that blocks before its first item is
    bounded too. `on_timeout` runs before the raise (cancel the request there).
    """
    items: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for item in responses():
                items.put((item, None))
        except BaseException as exc:  # handed to the caller
            items.put((None, exc))
        items.put((_END, None))

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    deadline = clock() + timeout_s
    while True:
        try:
            item, error = items.get(timeout=max(deadline - clock(), 0.0))
        except queue.Empty:
            on_timeout()
            raise StreamTimeout(f"no complete answer within {timeout_s:.0f} s") from None
        if error is not None:
            raise error
        if item is _END:
            return
        yield item


def _bytes(values: np.ndarray) -> np.ndarray:
    return np.array([v.encode() if isinstance(v, str) else v for v in values.reshape(-1)], dtype=np.object_)


class Bls:
    """The router's calls to the classifier and to its targets."""

    def __init__(self, pb: Any, classifier: str = "query_classifier") -> None:
        self.pb, self.classifier = pb, classifier

    def classify(self, text: str, kinds: tuple[str, ...]) -> Classification:
        pb = self.pb
        inputs = [pb.Tensor("text", np.array([[text.encode()]], dtype=np.object_))]
        if kinds:
            inputs.append(pb.Tensor("attachments", np.array([[k.encode() for k in kinds]], dtype=np.object_)))
        resp = pb.InferenceRequest(model_name=self.classifier, inputs=inputs,
                                   requested_output_names=["classification"]).exec()
        if resp.has_error():
            if resp.error().code() == pb.TritonError.INVALID_ARG:
                raise InputError.from_message(resp.error().message(), "text")
            raise ServingError(f"{self.classifier}: {resp.error().message()}")
        raw = pb.get_output_tensor_by_name(resp, "classification").as_numpy().reshape(-1)[0]
        return Classification(**json.loads(raw))

    def invoke(self, model: ModelSpec, inputs: dict[str, np.ndarray], stream: bool, timeout_s: float,
               outputs: list[str]) -> Iterator[dict[str, np.ndarray]]:
        """The outputs of each response of `model`, read within `timeout_s`; TargetError when it fails."""
        pb = self.pb
        tensors = [pb.Tensor(k, _bytes(v) if v.dtype == np.object_ else v) for k, v in inputs.items()]
        request = pb.InferenceRequest(model_name=model.name, inputs=tensors, requested_output_names=outputs,
                                      timeout=int(timeout_s * 1e6))
        decoupled = target_of(model).streams  # text generators are decoupled (the vLLM contract)
        started: dict[str, Any] = {}

        def exec_request() -> Iterator[Any]:
            try:
                started["responses"] = request.exec(decoupled=True) if decoupled else [request.exec()]
            except pb.TritonModelException as exc:
                raise TargetError(f"{model.name}: {exc}") from exc
            yield from started["responses"]

        def cancel() -> None:
            if hasattr(started.get("responses"), "cancel"):
                started["responses"].cancel()

        try:
            for resp in with_deadline(exec_request, timeout_s, cancel):
                got = self._outputs(model, resp, outputs)
                if got:  # a decoupled model's final response may be empty
                    yield got
        except StreamTimeout as exc:
            raise TargetError(f"{model.name}: {exc} (options.timeout_s; a stub that died mid-request "
                              "never answers)") from None

    def _outputs(self, model: ModelSpec, resp: Any, outputs: list[str]) -> dict[str, np.ndarray]:
        if resp.has_error():
            err = resp.error()
            if err.code() == self.pb.TritonError.INVALID_ARG:
                raise InputError.from_message(err.message(), "text")
            raise TargetError(f"{model.name}: {err.message()}")
        got = {name: self.pb.get_output_tensor_by_name(resp, name) for name in outputs}
        return {name: t.as_numpy() for name, t in got.items() if t is not None}
