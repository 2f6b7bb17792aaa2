"""How the client speaks to Triton: arrays as its tensors, the HTTP generate route's events, and the
router's errors decoded through the contract."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from model_router.contract.errors import ErrorKind, WireError
from model_router.contract.generation import SAMPLING
from model_router.contract.request import RouteOptions, parse_options
from model_router.contract.sampling import SamplingParams
from model_router.contract.tensors import Tensors
from model_router.errors import InputError

T = TypeVar("T")


def array(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    arr = np.array([value], dtype=np.object_ if isinstance(value, (str, bytes)) else None)
    if arr.dtype == np.object_:
        arr = np.array([v.encode("utf-8") if isinstance(v, str) else v for v in arr.reshape(-1)], dtype=np.object_)
    return arr


def tensor(module: Any, name: str, value: Any):
    arr = array(value)
    t = module.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
    t.set_data_from_numpy(arr)
    return t


class RouterFailed(InferenceServerException):
    """The router's error, decoded through the contract: `.wire.kind` (bad_input, overloaded, ...),
    `.wire.field`, `.wire.retry_after_s`."""

    def __init__(self, wire: WireError, status: str | None = None) -> None:
        super().__init__(wire.message, status=status or wire.kind.value)  # status: the HTTP code, when one came
        self.wire = wire

    @property
    def retryable(self) -> bool:
        """The work died with the router's stub (or the router was not ready): Triton's error, not the router's."""
        return not self.wire.ours and self.wire.kind not in (ErrorKind.BAD_INPUT, ErrorKind.CANCELLED)


def event_tensors(event: dict[str, Any]) -> Tensors:
    """An HTTP generate event's outputs as the contract's arrays."""
    return {k: np.array(v if isinstance(v, list) else [v], dtype=np.object_ if not isinstance(v, (int, float))
                        else None) for k, v in event.items() if k not in ("model_name", "model_version")}


def http_events(url: str, model: str, inputs: dict[str, Any], stream: bool, headers: dict[str, str] | None,
            timeout: float) -> Iterator[dict[str, Any]]:
    """Triton's generate extension: the one HTTP route that serves decoupled models."""
    route = "generate_stream" if stream else "generate"
    req = urllib.request.Request(f"http://{url}/v2/models/{model}/{route}", data=json.dumps(inputs).encode(),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if not stream:
                yield json.loads(resp.read())
                return
            for line in resp:
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    if "error" in event:
                        raise RouterFailed(WireError.parse(event["error"]))
                    yield event
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace").strip().removeprefix("data: ")
        try:
            body = json.loads(body).get("error", body)
        except ValueError:
            pass
        raise RouterFailed(WireError.parse(str(body)), str(exc.code)) from None


def with_last(items: Iterable[T]) -> Iterator[tuple[T, bool]]:
    """Each item, and whether it is the last (told one item late)."""
    it = iter(items)
    try:
        held = next(it)
    except StopIteration:
        return
    for item in it:
        yield held, False
        held = item
    yield held, True


def route_options(sampling: SamplingParams | dict[str, Any] | None = None, **values: Any) -> RouteOptions:
    """The router's options, typed (`values` that are None left out): RouterFailed names a bad one."""
    given = {k: v for k, v in values.items() if v is not None}
    try:
        return parse_options({**given, SAMPLING: sampling} if sampling else given)
    except InputError as exc:
        raise RouterFailed(WireError.of(exc)) from None


def json_value(arr: np.ndarray) -> Any:
    """One element of a contract array as Triton's HTTP generate route takes it (JSON)."""
    value = arr.reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value.item() if hasattr(value, "item") else value
