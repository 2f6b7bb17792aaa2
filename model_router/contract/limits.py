"""What one text model takes: its limits, which the router checks before it loads the model and
the model's engine checks again on what arrives. One type, read from the engine's own config."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The engine parameter (config.pbtxt) behind each limit, as our backends read them.
PARAMETERS = {"max_output_tokens": "max_tokens_limit", "max_prompt_tokens": "max_input_tokens",
              "max_schema_bytes": "max_schema_bytes"}


class ModelLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_output_tokens: int = Field(1024, ge=1)     # a request's max_tokens
    max_prompt_tokens: int = Field(2048, ge=1)     # the prompt, after the chat template, in the model's tokens
    max_schema_bytes: int = Field(64 * 1024, ge=1)  # a request's JSON schemas (tools, response_format), as JSON

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> ModelLimits:
        """From a model config's string parameters (those it lacks keep their defaults)."""
        return cls.model_validate({name: parameters[key] for name, key in PARAMETERS.items() if key in parameters})

    @classmethod
    def from_engine_args(cls, args: dict[str, Any]) -> ModelLimits:
        """From the vLLM backend's engine arguments (model.json): its max_model_len bounds the prompt and
        the output together, so each alone takes at most max_model_len - 1 (the other needs a token)."""
        length = args.get("max_model_len")
        return cls(max_output_tokens=length - 1, max_prompt_tokens=length - 1) if length else cls()
