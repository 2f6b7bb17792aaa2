"""Triton's model-control API over HTTP (tritonclient), as the loader's ModelControl.

The router uses the HTTP API rather than pb_utils.load_model: in Triton 24.10 the latter blocks
the calling stub's message thread, which would stall every other request of the router while a
model loads. An HTTP call blocks only the worker thread that makes it.
"""
from __future__ import annotations

import time

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


class TritonModelControl:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout_s: float = 900.0) -> None:
        self.url, self.headers, self.timeout_s = url, headers or {}, timeout_s

    def _client(self) -> httpclient.InferenceServerClient:
        # One client per call: tritonclient's HTTP client is not safe to share across threads.
        return httpclient.InferenceServerClient(self.url, network_timeout=self.timeout_s, connection_timeout=10.0)

    def load(self, name: str) -> None:
        if self.states().get(name) == "UNLOADING":  # unloaded by hand a moment ago: let it finish
            self.wait_unloaded(name, self.timeout_s)
        self._client().load_model(name, headers=self.headers)

    def unload(self, name: str) -> None:
        self._client().unload_model(name, headers=self.headers)

    def states(self) -> dict[str, str]:
        index = self._client().get_model_repository_index(headers=self.headers)
        return {m["name"]: m.get("state", "") for m in index}

    def ready_models(self) -> set[str]:
        return {name for name, state in self.states().items() if state == "READY"}

    def wait_unloaded(self, name: str, timeout: float) -> None:
        """Triton's unload returns before the model is gone; poll until it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states().get(name, "") not in ("READY", "UNLOADING", "LOADING"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"model {name!r} still not unloaded after {timeout:.0f}s")


__all__ = ["TritonModelControl", "InferenceServerException"]
