import json

import pytest

from model_router.contract.limits import ModelLimits
from model_router.contract.sampling import SamplingError, SamplingParams, parse_sampling_parameters


def test_empty_gives_defaults() -> None:
    assert parse_sampling_parameters(None) == SamplingParams()
    assert parse_sampling_parameters("") == SamplingParams()
    assert parse_sampling_parameters(b"{}") == SamplingParams()


def test_numbers_and_numeric_strings_as_vllm_accepts() -> None:
    p = parse_sampling_parameters(json.dumps({"max_tokens": "12", "temperature": 0.7, "top_p": "0.9",
                                              "top_k": -1, "seed": 3, "stop": "\n"}))
    assert (p.max_tokens, p.temperature, p.top_p, p.top_k, p.seed, p.stop) == (12, 0.7, 0.9, 0, 3, ("\n",))
    assert not p.greedy
    assert parse_sampling_parameters({"temperature": 0}).greedy


@pytest.mark.parametrize("raw, field, words", [
    ({"max_tokenz": 3}, "max_tokenz", "unknown parameter. Available:"),
    ({"max_tokens": 0}, "max_tokens", "must be >= 1"),
    ({"max_tokens": 100000}, "max_tokens", "exceeds this model's limit of 1024"),
    ({"max_tokens": 1.5}, "max_tokens", "expected an integer"),
    ({"temperature": -1}, "temperature", "out of range [0.0, 2.0]"),
    ({"temperature": "hot"}, "temperature", "expected float"),
    ({"top_p": 0}, "top_p", "out of range"),
    ({"stop": 5}, "stop", "expected a non-empty string"),
    ({"stop": ["a"] * 9}, "stop", "at most 8"),
    ({"seed": True}, "seed", "expected a number"),
])
def test_bad_values_name_the_field(raw: dict, field: str, words: str) -> None:
    with pytest.raises(SamplingError) as err:
        parse_sampling_parameters(json.dumps(raw), ModelLimits(max_output_tokens=1024))
    assert f"sampling_parameters.{field}" in str(err.value)
    assert words in str(err.value)


def test_max_tokens_is_bounded_by_the_models_limit_alone() -> None:
    limits = ModelLimits(max_output_tokens=300)
    assert parse_sampling_parameters({"max_tokens": 300}, limits).max_tokens == 300
    with pytest.raises(SamplingError, match="sampling_parameters.max_tokens: 301 exceeds this model's limit of 300"):
        parse_sampling_parameters({"max_tokens": 301}, limits)
    assert parse_sampling_parameters({"max_tokens": 100000}).max_tokens == 100000  # no model: no limit here


@pytest.mark.parametrize("raw, words", [("{not json", "not valid JSON"), ("[1, 2]", "expected a JSON object"),
                                        (b"\xff\xfe", "not valid UTF-8")])
def test_malformed(raw: str | bytes, words: str) -> None:
    with pytest.raises(SamplingError, match=words):
        parse_sampling_parameters(raw)
