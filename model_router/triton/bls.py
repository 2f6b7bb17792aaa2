"""Calls from the router to other models through BLS, each with a deadline.

When a target's stub process dies mid-request, Triton 24.10 never ends that request's BLS
response stream; reading it directly would hold a router worker forever. Read on a daemon
thread instead, and give up at the deadline, or as soon as the client cancels. A call given up
on (deadline, cancellation, or a caller that stops reading) cancels its BLS request, so that the
target stops working for it. The pb_utils module is passed in, so that this
module imports without a stub (the unit tests drive `with_deadline` alone).
"""
from __future__ import annotations

import queue
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np

from ..contract.classifier import Classification
from ..contract import classifier as classifier_contract
from ..contract.control import Cancel
from ..contract.errors import ErrorKind, WireError
from ..errors import Cancelled, ServingError, TargetError, never
from ..registry import ModelSpec
from ..routing.targets import target_of

T = TypeVar("T")
_END = object()


class StreamTimeout(TimeoutError):
    """The stream did not finish before its deadline."""


class TargetGone(RuntimeError):
    """The target's process is known to have died: its stream would never finish."""


def with_deadline(responses: Callable[[], Iterable[T]], timeout_s: float, on_timeout: Callable[[], None] = lambda: None,
                  clock: Callable[[], float] = time.monotonic, cancelled: Callable[[], bool] = never,
                  poll_s: float = 0.1, gone: Callable[[], str] = lambda: "") -> Iterator[T]:
    """Yield what `responses()` yields, raising StreamTimeout once `timeout_s` have passed in all,
    Cancelled when `cancelled()` turns true, and TargetGone when `gone()` gives a reason (both
    checked every `poll_s` while waiting).

    `responses` is called on the reader thread, so a call that blocks before its first item is
    bounded too. `on_timeout` runs before either raise (cancel the request there).
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
        left = deadline - clock()
        try:
            item, error = items.get(timeout=max(min(left, poll_s), 0.0))
        except queue.Empty:
            if cancelled():
                on_timeout()
                raise Cancelled("while waiting for a model") from None
            reason = gone()
            if reason:
                on_timeout()
                raise TargetGone(reason) from None
            if left > poll_s:
                continue
            on_timeout()
            raise StreamTimeout(f"no complete answer within {timeout_s:.0f} s") from None
        if error is not None:
            raise error
        if item is _END:
            return
        yield item


def _bytes(values: np.ndarray) -> np.ndarray:
    """str elements as UTF-8, in the tensor's own shape (a batched model's rows stay rows)."""
    return np.array([v.encode() if isinstance(v, str) else v for v in values.reshape(-1)],
                    dtype=np.object_).reshape(values.shape)


class Bls:
    """The router's calls to the classifier and to its targets."""

    def __init__(self, pb: Any, classifier: str = classifier_contract.MODEL) -> None:
        self.pb, self.classifier = pb, classifier

    def classify(self, text: str, kinds: tuple[str, ...], timeout_s: float = 5.0) -> Classification:
        """The classifier's answer within `timeout_s` (a classifier whose stub died never answers)."""
        pb, req = self.pb, classifier_contract.ClassifyRequest(text, kinds)
        call = pb.InferenceRequest(model_name=self.classifier, requested_output_names=list(req.outputs),
                                   inputs=[pb.Tensor(k, v) for k, v in req.encode().items()])
        try:
            resp = next(with_deadline(lambda: [call.exec()], timeout_s))
        except StreamTimeout:
            raise ServingError(f"{self.classifier}: no answer within {timeout_s:.0f} s") from None
        if resp.has_error():
            wire = _wire(pb, resp.error())
            if wire.kind is ErrorKind.BAD_INPUT:
                wire.raise_as("text")
            raise ServingError(f"{self.classifier}: {wire.message}")
        return classifier_contract.decode_classification(
            {name: pb.get_output_tensor_by_name(resp, name).as_numpy() for name in req.outputs})

    def invoke(self, model: ModelSpec, inputs: dict[str, np.ndarray], stream: bool, timeout_s: float,
               outputs: list[str], cancelled: Callable[[], bool] = never,
               gone: Callable[[], str] = lambda: "") -> Iterator[dict[str, np.ndarray]]:
        """The outputs of each response of `model`, read within `timeout_s`; TargetError when it fails
        (or `gone()` says its process died), Cancelled when the client gives up."""
        pb = self.pb
        tensors = [pb.Tensor(k, _bytes(v) if v.dtype == np.object_ else v) for k, v in inputs.items()]
        request_id = f"tmr-{uuid.uuid4().hex}"
        request = pb.InferenceRequest(model_name=model.name, inputs=tensors, requested_output_names=outputs,
                                      request_id=request_id, timeout=int(timeout_s * 1e6))
        decoupled = target_of(model).streams  # text generators are decoupled (the vLLM contract)
        started: dict[str, Any] = {}

        def exec_request() -> Iterator[Any]:
            try:
                started["responses"] = request.exec(decoupled=True) if decoupled else [request.exec()]
            except pb.TritonModelException as exc:
                raise TargetError(f"{model.name}: {exc}") from exc
            yield from started["responses"]

        def cancel() -> None:
            responses = started.get("responses")
            if hasattr(responses, "cancel"):  # BLS cancellation, in Triton releases that have it
                responses.cancel()
            elif decoupled and model.cancels_by_id:
                self._cancel_by_id(model.name, request_id)

        finished = False
        try:
            for resp in with_deadline(exec_request, timeout_s, cancel, cancelled=cancelled, gone=gone):
                got = self._outputs(model, resp, outputs, tuple(inputs))
                if got:  # a decoupled model's final response may be empty
                    yield got
            finished = True
        except StreamTimeout as exc:
            raise TargetError(f"{model.name}: {exc} (options.timeout_s; a stub that died mid-request "
                              "never answers)") from None
        except TargetGone as exc:
            raise TargetError(f"{model.name}: {exc}") from None
        finally:
            if not finished:  # given up on (an error, or the caller stopped reading): the target stops too
                cancel()

    def _cancel_by_id(self, model: str, request_id: str) -> None:
        """Tell our backend to stop generating for `request_id` (the contract's Cancel): Triton 24.10's
        BLS response iterator cannot cancel. Sent from a thread of its own, since a model whose stub
        died never answers."""
        pb, cancel = self.pb, Cancel(request_id)

        def send() -> None:
            try:
                inputs = [pb.Tensor(k, v) for k, v in cancel.encode().items()]
                for _ in pb.InferenceRequest(model_name=model, inputs=inputs, requested_output_names=cancel.outputs,
                                             parameters=cancel.parameters()).exec(decoupled=True):
                    pass
            except Exception:  # the model is gone or failing: nothing left to stop
                pass

        threading.Thread(target=send, name="cancel", daemon=True).start()

    def _outputs(self, model: ModelSpec, resp: Any, outputs: list[str], sent: tuple[str, ...]) -> dict[str, np.ndarray]:
        if resp.has_error():
            wire = _wire(self.pb, resp.error())
            if wire.kind is ErrorKind.BAD_INPUT:  # the client's fault: it names the field
                wire.raise_as("text")
            raise TargetError(f"{model.name}: {wire.message}")
        got = {name: self.pb.get_output_tensor_by_name(resp, name) for name in outputs}
        return {name: t.as_numpy() for name, t in got.items() if t is not None}


def _wire(pb: Any, error: Any) -> WireError:
    """A model's error through the contract (the code's name where the message is not ours)."""
    names = {getattr(pb.TritonError, n, None): n for n in ("INVALID_ARG", "NOT_FOUND", "UNAVAILABLE", "CANCELLED")}
    return WireError.parse(error.message(), names.get(error.code()))
