"""What a model's own engine config says of its limits: the config.pbtxt parameters our backends
read (max_tokens_limit, max_input_tokens, max_schema_bytes), or the vLLM backend's engine arguments
(1/model.json, max_model_len). The registry carries them (Registry.with_limits); nothing copies them."""
from __future__ import annotations

import json
from pathlib import Path

from google.protobuf import text_format

from .contract.limits import ModelLimits
from .errors import RegistryError
from .triton.control import repository_config


def engine_limits(model_dir: Path) -> ModelLimits | None:
    """The limits of the model in `model_dir` (None: no config there)."""
    config, engine_args = model_dir / "config.pbtxt", model_dir / "1" / "model.json"
    try:
        if engine_args.is_file():
            return ModelLimits.from_engine_args(json.loads(engine_args.read_text()))
        if config.is_file():
            parameters = json.loads(repository_config(model_dir)).get("parameters", {})
            return ModelLimits.from_parameters({k: v.get("string_value", "") for k, v in parameters.items()})
    except (ValueError, text_format.ParseError) as exc:  # pydantic's ValidationError is a ValueError
        raise RegistryError(f"model {model_dir.name}: its limits in {model_dir}: {exc}") from None
    return None


def limits_in(repositories: tuple[Path, ...], names: list[str]) -> dict[str, ModelLimits]:
    """The limits of each named model that has a config in one of `repositories` (the first that holds it)."""
    found: dict[str, ModelLimits] = {}
    for repository in repositories:
        for name in names:
            limits = engine_limits(repository / name) if name not in found else None
            if limits is not None:
                found[name] = limits
    return found
