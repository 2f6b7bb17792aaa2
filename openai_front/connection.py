"""The front's one link to Triton: the router over gRPC streaming (asyncio), and model configs."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException

from .errors import ApiError, from_router
from .translate import RouterCall

log = logging.getLogger(__name__)
ROUTER = "router"
OUTPUTS = ("text_output", "routing", "audio")
CLOSE_S = 5.0


@dataclass(frozen=True)
class Piece:
    """Text as the router streams it."""

    text: str


@dataclass(frozen=True)
class Final:
    """The router's last response: the rest of the text, the routing decision, speech if any."""

    text: str
    decision: dict[str, Any] = field(default_factory=dict)
    audio: bytes | None = None

    @property
    def model(self) -> str | None:
        return self.decision.get("model")


def _input(name: str, value: str | bytes) -> grpcaio.InferInput:
    tensor = grpcaio.InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value.encode() if isinstance(value, str) else value], dtype=np.object_))
    return tensor


async def _close(stream: Any, done: asyncio.Event) -> None:
    """End a stream whose answer is complete without cancelling it: our side closes and Triton
    finishes the call. A cancellation that arrives after the last response races Triton 24.10's
    gRPC frontend, which then holds the router forever (its unload never ends; fixed upstream in
    triton-inference-server/server#8078). Cancelled only if Triton does not finish in CLOSE_S."""
    done.set()

    async def drain() -> None:
        async for _ in stream:
            pass

    try:
        await asyncio.wait_for(drain(), CLOSE_S)
    except (asyncio.TimeoutError, grpc.RpcError, InferenceServerException):
        stream.cancel()


def _strings(result: Any, name: str) -> list[bytes]:
    values = result.as_numpy(name)
    return [] if values is None else list(values.reshape(-1))


class RouterConnection:
    """One gRPC channel to Triton, shared by every request (create it inside the running event loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = grpcaio.InferenceServerClient(url)

    async def close(self) -> None:
        await self._client.close()

    async def events(self, call: RouterCall) -> AsyncIterator[Piece | Final]:
        """The router's answer to `call`: Pieces while it streams, then one Final. Its errors raise
        ApiError (errors.from_router). Closing the iterator early cancels the request in Triton."""
        done = asyncio.Event()

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": ROUTER, "inputs": [_input(k, v) for k, v in call.inputs().items()],
                   "outputs": [grpcaio.InferRequestedOutput(o) for o in OUTPUTS],
                   "parameters": {"triton_enable_empty_final_response": True}}
            await done.wait()  # keep our side open: closing it early would end the stream

        stream = self._client.stream_infer(requests())
        finished = False  # the router's answer is complete (its last response, or an error): nothing to cancel
        try:
            async for result, error in stream:
                if error is not None:
                    finished = True
                    await _close(stream, done)
                    raise from_router(str(error), call)
                text = "".join(v.decode("utf-8", "replace") for v in _strings(result, "text_output"))
                params = result.get_response().parameters
                if "triton_final_response" in params and params["triton_final_response"].bool_param:
                    routing, audio = _strings(result, "routing"), _strings(result, "audio")
                    finished = True
                    await _close(stream, done)
                    yield Final(text, json.loads(routing[0]) if routing else {},
                                base64.b64decode(audio[0]) if audio else None)
                    return
                if text:
                    yield Piece(text)
            finished = True
            raise ApiError(500, "router: the stream ended without a final response", "server_error")
        except grpc.RpcError as exc:  # the channel itself: Triton down, or not there yet
            code = exc.code() if hasattr(exc, "code") else None
            raise from_router(exc.details() if hasattr(exc, "details") else str(exc), call,
                              unreachable=code == grpc.StatusCode.UNAVAILABLE) from None
        except InferenceServerException as exc:
            raise from_router(exc.message(), call) from None
        except (GeneratorExit, asyncio.CancelledError):  # closed: the HTTP client went away, if not answered
            if not finished:
                log.info("the client left before the router's answer was complete: cancelling its request")
            raise
        finally:
            # Synchronous on purpose: this runs when the HTTP client goes away mid-stream too, inside a
            # cancelled task, where an await would not return. Cancelling the call cancels the request.
            done.set()
            if not finished:
                stream.cancel()

    async def model_config(self, model: str) -> dict[str, Any] | None:
        """A loaded model's configuration as JSON, None when Triton cannot say."""
        try:
            return (await self._client.get_model_config(model, as_json=True)).get("config")
        except InferenceServerException:
            return None

    async def ready(self) -> bool:
        try:
            return await self._client.is_model_ready(ROUTER)
        except InferenceServerException:
            return False
