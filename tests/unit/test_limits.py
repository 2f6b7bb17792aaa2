"""Which models can take a request's size (routing.limits), decided before any load, and the limits
the registry reads from each model's own config (engine_config)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers_backend.settings import BackendSettings

from model_router.contract.limits import ModelLimits
from model_router.contract.router import RouterRequest
from model_router.engine_config import engine_limits
from model_router.errors import InputError, RegistryError
from model_router.registry import ModelSpec
from model_router.routing.limits import client_field, over_limits
from model_router.settings import RouterSettings

SMALL = ModelLimits(max_output_tokens=1024, max_schema_bytes=4096)
LARGE = ModelLimits(max_output_tokens=4096, max_schema_bytes=1024)


def spec(name: str, limits: ModelLimits, interface: str = "text-generation") -> ModelSpec:
    return ModelSpec(name=name, backend="transformers", interface=interface, use_cases=("agent",), quality=0.5,
                     latency_ms=1, load_ms=1, memory_mb=1, profile=("cpu",)).model_copy(update={"limits": limits})


def options(max_tokens: int = 16, schema_properties: int = 0, **more):
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": "x" * 100} for i in range(schema_properties)}}}}]
    extra = {"tools": tools, "tool_choice": "required"} if schema_properties else {}
    return RouterRequest.of("hi", {"sampling_parameters": {"max_tokens": max_tokens}, **extra, **more}).options


MODELS = [spec("small", SMALL), spec("large", LARGE), spec("speech", ModelLimits(max_output_tokens=1), "tts")]


def test_a_request_every_model_takes_skips_none() -> None:
    assert over_limits(MODELS, options(1024)) == {}


def test_a_request_some_models_take_goes_to_those() -> None:
    assert over_limits(MODELS, options(2000)) == {
        "small": "max_tokens: 2000 exceeds the limit of 1024"}


def test_a_request_no_model_takes_names_the_field_and_the_largest_limit() -> None:
    with pytest.raises(InputError) as err:
        over_limits(MODELS, options(5000))
    assert err.value.field == "options.sampling_parameters.max_tokens"
    assert "5000 exceeds the largest limit on offer, 4096 (model large)" in str(err.value)


def test_a_named_model_that_cannot_take_it_is_the_error() -> None:
    with pytest.raises(InputError, match="2000 exceeds the limit of model small, 1024"):
        over_limits(MODELS, options(2000), named="small")


def test_no_model_takes_both_the_tokens_and_the_schema() -> None:
    """small takes the schema but not max_tokens; large the other way round: the model that takes the
    tokens is named with the limit it fails."""
    with pytest.raises(InputError) as err:
        over_limits(MODELS, options(2000, schema_properties=20))
    assert err.value.field.startswith("options.tools") and "limit of model large, 1024" in str(err.value)


def test_a_constraint_the_client_wrote_itself_is_measured_and_named_as_its_own() -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "x" * 100} for i in range(60)}}
    opts = RouterRequest.of("hi", {"sampling_parameters": {"structured_outputs": {"json": schema}}}).options
    with pytest.raises(InputError) as err:
        over_limits(MODELS, opts)
    assert err.value.field == "options.sampling_parameters.structured_outputs", err.value
    request = RouterRequest.of("hi", {"sampling_parameters": {"structured_outputs": {"json_object": True}}})
    assert client_field("sampling_parameters.structured_outputs.json", request) == \
        "options.sampling_parameters.structured_outputs.json"


def test_a_schema_over_every_limit_names_the_tool() -> None:
    with pytest.raises(InputError) as err:
        over_limits(MODELS, options(16, schema_properties=60))
    assert err.value.field == "options.tools[0]" and "largest limit on offer, 4096 (model small)" in str(err.value)


@pytest.mark.parametrize("engine, messages, client", [
    ("sampling_parameters.max_tokens", False, "options.sampling_parameters.max_tokens"),
    ("sampling_parameters.structured_outputs.json", False, "options.response_format"),
    ("text_input", False, "text"), ("text_input", True, "messages"), ("messages", True, "messages"),
    ("tools[0].function.name", False, "options.tools[0].function.name"), ("image", False, "image")])
def test_an_engines_field_is_named_as_the_client_sent_it(engine: str, messages: bool, client: str) -> None:
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"}] if messages else None
    request = RouterRequest.of("and?" if messages else "hi", {"response_format": {"type": "json_object"}},
                               messages=turns)
    assert client_field(engine, request) == client


def test_limits_are_read_from_the_models_config(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(
        'backend: "llamacpp"\nparameters { key: "max_tokens_limit" value: { string_value: "3000" } }\n'
        'parameters { key: "max_input_tokens" value: { string_value: "5000" } }\n')
    assert engine_limits(tmp_path / "m") == ModelLimits(max_output_tokens=3000, max_prompt_tokens=5000)
    (tmp_path / "v" / "1").mkdir(parents=True)
    (tmp_path / "v" / "1" / "model.json").write_text('{"model": "x", "max_model_len": 8192}')
    assert engine_limits(tmp_path / "v") == ModelLimits(max_output_tokens=8191, max_prompt_tokens=8191)
    assert engine_limits(tmp_path / "absent") is None
    (tmp_path / "m" / "config.pbtxt").write_text('parameters { key: "max_tokens_limit" value: { string_value: "0" } }')
    with pytest.raises(RegistryError, match="model m: its limits"):
        engine_limits(tmp_path / "m")


def test_an_engine_reads_its_limits_from_the_parameters_the_router_reads() -> None:
    params = {"model_path": "m", "max_tokens_limit": "3000", "max_input_tokens": "5000", "max_schema_bytes": "9000"}
    settings = BackendSettings.from_config({"parameters": {k: {"string_value": v} for k, v in params.items()}})
    assert settings.limits == ModelLimits.from_parameters(params) == ModelLimits(
        max_output_tokens=3000, max_prompt_tokens=5000, max_schema_bytes=9000)


def test_the_gpu_profile_reads_the_vllm_models_limits_from_their_own_repository() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = RouterSettings.read({}, {"TMR_PROFILE": "gpu", "TMR_MODEL_REPOSITORIES": str(root / "model_repository_gpu")})
    registry, _, unknown = settings.load_registry((root / "model_repository", *settings.model_repositories))
    assert unknown == []
    for name in ("qwen2_5_7b_instruct", "phi_2"):
        length = json.loads((root / "model_repository_gpu" / name / "1" / "model.json").read_text())["max_model_len"]
        assert registry.model(name).limits.max_output_tokens == length - 1
    _, _, unknown = RouterSettings(profile="gpu").load_registry((root / "model_repository",))
    assert "qwen2_5_7b_instruct" in unknown  # said at startup: without its repository, defaults
