"""The backend's settings: every config.pbtxt parameter it reads, typed, with its default, read once.

A model's config.pbtxt holds them as `parameters { key: ... value: { string_value: ... } }`;
environment variables in a value (${TMR_MODELS}) are expanded. A bad value fails the load with an
error that names the parameter, the value and what is allowed. Kept free of Triton.
"""
from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from model_router.contract.limits import ModelLimits

TaskName = Literal["text-generation", "automatic-speech-recognition", "text-to-speech"]


class SettingsError(ValueError):
    """A config.pbtxt parameter the backend cannot use."""


class BackendSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    task: TaskName = "text-generation"
    model_path: str = Field(min_length=1)  # a directory, or a hub id in the local Hugging Face cache
    device: str = Field("", pattern=r"^(|cpu|cuda(:\d+)?)$")  # "": follows the instance kind
    dtype: Literal["float32", "float16", "bfloat16", "auto"] = "float32"
    threads: int = Field(0, ge=0, le=1024)  # torch threads; 0 leaves torch's default
    serve_nice: int = Field(-10, ge=-20, le=19)  # CPU priority of the serving threads (model.py)
    # CPU priority of a load: "serving" (the server's own) or "idle" (only what serving leaves). Idle
    # starved loads that requests were waiting for on saturated cores (scripts/bench_chaos.py: a
    # fallback load took 82 s, a reload failed after 61 s with "stub not healthy").
    load_priority: Literal["serving", "idle"] = "serving"
    # Text generation only.
    chat_template: bool = True  # render prompts through the tokenizer's chat template when it has one
    # The model's limits (contract.limits.ModelLimits, read by the router's registry from these same
    # parameters): the prompt's tokens after the chat template, max_tokens, a request's schemas as JSON.
    max_input_tokens: int = Field(ModelLimits().max_prompt_tokens, ge=1)
    max_tokens_limit: int = Field(ModelLimits().max_output_tokens, ge=1)
    max_schema_bytes: int = Field(ModelLimits().max_schema_bytes, ge=1)
    max_batch_size: int = Field(8, ge=1, le=1024)  # rows generated together (continuous batching)
    max_batch_tokens: int = Field(16384, ge=1)  # the sum of every row's prompt + max_tokens
    gather_ms: float = Field(0.0, ge=0.0, le=1000.0)  # an idle batch waits this long for company
    # Streamed pieces carry up to stream_interval tokens while the batch holds stream_interval_rows
    # rows or more (0: never): fewer pieces to relay when the cores are busiest (batching.py).
    stream_interval: int = Field(1, ge=1, le=64)
    stream_interval_rows: int = Field(0, ge=0, le=1024)

    @field_validator("chat_template", mode="before")
    @classmethod
    def _bool_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return value

    @classmethod
    def from_config(cls, config: dict[str, Any], instance_kind: str = "CPU", device_id: str = "") -> BackendSettings:
        """The settings of a model config (the dict Triton passes as `model_config`); the device
        follows the instance kind (a GPU instance: cuda:<its device id>) unless set."""
        raw = {key: os.path.expandvars(value.get("string_value", ""))
               for key, value in config.get("parameters", {}).items() if key in cls.model_fields}
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "parameters"
            shown = f"={raw[key]!r}" if key in raw else " (missing)"
            raise SettingsError(f"parameter {key}{shown}: {err['msg']}") from None
        device = settings.device or ("cuda" if instance_kind == "GPU" else "cpu")
        if device == "cuda" and device_id:  # the GPU Triton gave this instance
            device = f"cuda:{device_id}"
        return settings.model_copy(update={"device": device})

    @property
    def limits(self) -> ModelLimits:
        return ModelLimits(max_output_tokens=self.max_tokens_limit, max_prompt_tokens=self.max_input_tokens,
                           max_schema_bytes=self.max_schema_bytes)

    @property
    def gather_s(self) -> float:
        return self.gather_ms / 1000
