"""Triton's model-control API over HTTP (tritonclient), as the loader's ModelControl.

The router uses the HTTP API rather than pb_utils.load_model: in Triton 24.10 the latter blocks
the calling stub's message thread, which would stall every other request of the router while a
model loads. An HTTP call blocks only the worker thread that makes it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from ..serving.gpu_share import gpu_memory_utilization


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

    def load(self, name: str, config: str | None = None, files: dict[str, bytes] | None = None) -> None:
        """Load `name`; with `config` (JSON), as that config: Triton then starts fresh instances even
        of a model it holds, which is how a model whose stub died comes back. With `files`
        ({"file:1/model.json": contents}), from an override directory of exactly those files and
        `config` (Triton's model-repository extension), e.g. vllm_override's."""
        if files and config is None:
            raise ValueError(f"files={sorted(files)} for model {name!r}: an override load needs its config too")
        if config is None and self.states().get(name) == "UNLOADING":  # unloaded by hand a moment ago
            self.wait_unloaded(name, self.timeout_s)
        self._call("load_model", name, config=config, files=files)

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


def repository_config(model_dir: Path) -> str:
    """The model's config.pbtxt as Triton's JSON config, named after its folder."""
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    config.name = model_dir.name
    return json_format.MessageToJson(config, preserving_proto_field_name=True)


def vllm_load_files(model_dir: Path, gpu_total_mb: float, model_gpu_mb: float) -> dict[str, bytes]:
    """The vLLM model's 1/model.json with gpu_memory_utilization derived from its registry GPU memory
    and the GPU's real total (gpu_share), as a load's file override."""
    engine_args = json.loads((model_dir / "1" / "model.json").read_text())
    engine_args["gpu_memory_utilization"] = gpu_memory_utilization(model_dir.name, model_gpu_mb, gpu_total_mb)
    return {"file:1/model.json": json.dumps(engine_args, indent=2).encode()}


def vllm_override(model_dir: Path, gpu_total_mb: float, model_gpu_mb: float) -> tuple[str, dict[str, bytes]]:
    """(config, files) for TritonModelControl.load: a vLLM model sized to this GPU."""
    return repository_config(model_dir), vllm_load_files(model_dir, gpu_total_mb, model_gpu_mb)


__all__ = ["TritonModelControl", "InferenceServerException", "repository_config", "vllm_load_files", "vllm_override"]
