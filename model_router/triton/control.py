"""Triton's model-control API over HTTP (tritonclient), as the loader's ModelControl.

The router uses the HTTP API rather than pb_utils.load_model: in Triton 24.10 the latter blocks
the calling stub's message thread, which would stall every other request of the router while a
model loads. An HTTP call blocks only the worker thread that makes it.
"""
from __future__ import annotations

import json
import time
from typing import Any

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


class TritonModelControl:
    def __init__(self, url: str, headers: dict[str, str] | None = None, timeout_s: float = 900.0) -> None:
        self.url, self.headers, self.timeout_s = url, headers or {}, timeout_s

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One call on a client of its own, closed after it: tritonclient's HTTP client is not safe to
        share across threads, and a connection left open holds tritonserver's shutdown up for its
        whole exit timeout."""
        client = httpclient.InferenceServerClient(self.url, network_timeout=self.timeout_s, connection_timeout=10.0)
        try:
            return getattr(client, method)(*args, headers=self.headers, **kwargs)
        finally:
            client.close()

    def load(self, name: str, config: str | None = None) -> None:
        """Load `name`; with `config` (JSON), as that config: Triton then starts fresh instances even
        of a model it holds, which is how a model whose stub died comes back."""
        if config is None and self.states().get(name) == "UNLOADING":  # unloaded by hand a moment ago
            self.wait_unloaded(name, self.timeout_s)
        self._call("load_model", name, config=config)

    def config(self, name: str) -> str:
        """The model's config as Triton holds it, as JSON."""
        return json.dumps(self._call("get_model_config", name))

    def unload(self, name: str) -> None:
        self._call("unload_model", name)

    def states(self) -> dict[str, str]:
        return {m["name"]: m.get("state", "") for m in self._call("get_model_repository_index")}

    def wait_unloaded(self, name: str, timeout: float) -> None:
        """Triton's unload returns before the model is gone; poll until it is."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.states().get(name, "") not in ("READY", "UNLOADING", "LOADING"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"model {name!r} still not unloaded after {timeout:.0f}s")


__all__ = ["TritonModelControl", "InferenceServerException"]
