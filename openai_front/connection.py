"""The front's one link to Triton: the router over gRPC streaming (asyncio).

Every call asks the router for heartbeats (options.heartbeat_s): when the router's stub dies,
Triton 24.10 never ends the requests inside it, so a call that hears nothing for DEAD_AFTER_S ends
itself. A call whose work died before anything reached the client (the router's stub, Triton's
channel, the router model not ready again yet) is retried once, when the router is ready again.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, AsyncIterator

import grpc
import tritonclient.grpc.aio as grpcaio
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from model_router.contract import router as contract
from model_router.contract.control import Heartbeat, is_final, stream_parameters
from model_router.contract.errors import WireError
from model_router.contract.router import RouterAnswer, RouterRequest

from .errors import ApiError, from_wire, router_gone, unreachable
from .translate import RouterCall

log = logging.getLogger(__name__)
CLOSE_S = 5.0
HEARTBEAT_S = 0.5   # asked of the router on every call
DEAD_AFTER_S = 4.0  # silence that means its stub died (beats come twice a second, even while it waits)
READY_WAIT_S = 20.0  # how long a retry waits for the router to be ready again (its watchdog reloads it in ~2 s)


def _inputs(call: RouterCall) -> list[grpcaio.InferInput]:
    inputs = []
    for name, arr in call.request.encode().items():
        tensor = grpcaio.InferInput(name, list(arr.shape), np_to_triton_dtype(arr.dtype))
        tensor.set_data_from_numpy(arr)
        inputs.append(tensor)
    return inputs


def _router_error(exc: InferenceServerException, call: RouterCall) -> ApiError:
    return from_wire(WireError.parse(exc.message() or str(exc), exc.status()), call.openai_field)


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


class RouterConnection:
    """One gRPC channel to Triton, shared by every request (create it inside the running event loop)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = grpcaio.InferenceServerClient(url)

    async def close(self) -> None:
        await self._client.close()

    async def events(self, call: RouterCall) -> AsyncIterator[RouterAnswer]:
        """The router's answer to `call`: pieces (final False) while it streams, then the final one. Its
        errors raise ApiError (errors.from_wire). Closing the iterator early cancels the request in Triton.
        Work that died before its first piece is tried once more, once the router is ready."""
        call = dataclasses.replace(call, request=Heartbeat(HEARTBEAT_S).ask(call.request))
        delivered = False
        try:
            async for answer in self._attempt(call):
                delivered = True
                yield answer
        except ApiError as exc:
            if delivered or not exc.retryable:
                raise
            log.warning("the router's work died before its answer (%s): trying once more", exc.message)
            await self._wait_ready()
            async for answer in self._attempt(call):
                yield answer

    async def _wait_ready(self) -> None:
        """Until the router answers a health check (answered ahead of its queue): Triton 24.10 still
        calls a router whose stub died READY, so readiness alone would send the retry to the dead one."""
        deadline = time.monotonic() + READY_WAIT_S
        while time.monotonic() < deadline and not await self.alive():
            await asyncio.sleep(0.25)

    async def alive(self, within_s: float = 2.0) -> bool:
        probe = RouterCall(RouterRequest.of("", {"health": True}))
        try:
            async for answer in self._attempt(probe, within_s):
                if answer.final:
                    return True
        except ApiError:
            return False
        return False

    async def _attempt(self, call: RouterCall, silence_s: float | None = None) -> AsyncIterator[RouterAnswer]:
        done = asyncio.Event()

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield {"model_name": contract.MODEL, "inputs": _inputs(call),
                   "outputs": [grpcaio.InferRequestedOutput(o) for o in contract.OUTPUTS],
                   "parameters": stream_parameters()}
            await done.wait()  # keep our side open: closing it early would end the stream

        stream = self._client.stream_infer(requests())
        finished = False  # the router's answer is complete (its last response, or an error): nothing to cancel
        try:
            while True:
                try:
                    result, error = await asyncio.wait_for(anext(stream), silence_s or DEAD_AFTER_S)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise router_gone(f"no response nor heartbeat for {silence_s or DEAD_AFTER_S:.0f} s") from None
                if error is not None:
                    finished = True
                    await _close(stream, done)
                    raise _router_error(error, call)
                final = is_final(result.get_response().parameters)
                outputs = {o.name: result.as_numpy(o.name) for o in result.get_response().outputs}
                answer = RouterAnswer.decode({k: v for k, v in outputs.items() if v is not None}, final)
                if final:
                    finished = True
                    await _close(stream, done)
                    yield answer
                    return
                if not Heartbeat.is_beat(answer):
                    yield answer
            finished = True
            raise ApiError(500, "router: the stream ended without a final response", "server_error", retryable=True)
        except grpc.RpcError as exc:  # the channel itself: Triton down, or not there yet
            detail = exc.details() if hasattr(exc, "details") else str(exc)
            if hasattr(exc, "code") and exc.code() == grpc.StatusCode.UNAVAILABLE:
                raise unreachable(detail) from None
            raise ApiError(500, detail, "server_error") from None
        except InferenceServerException as exc:
            raise _router_error(exc, call) from None
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

    async def control(self, action: str, model: str, admin_key: str | None) -> None:
        """Load or unload `model` through Triton's model control, with its restricted API's key."""
        headers = {"admin-key": admin_key} if admin_key else None
        try:
            await (self._client.load_model if action == "load" else self._client.unload_model)(model, headers=headers)
        except InferenceServerException as exc:
            if "PERMISSION_DENIED" in str(exc.status()):
                raise ApiError(401, f"{action} {model}: the admin key is missing or wrong ({exc.message()})",
                               code="invalid_admin_key") from None
            raise ApiError(400, f"{action} {model}: {exc.message()}", param="model") from None

    async def ready(self) -> bool:
        try:
            return await self._client.is_model_ready(contract.MODEL)
        except InferenceServerException:
            return False
