"""Constrained decoding in the batching engine, on the tiny random Llama of test_batching_engine: a
random model's answers match their constraint (a JSON schema, a regex, a choice), a constrained row
shares its decode steps with free rows that still get what `generate` makes, and a constraint that
cannot be compiled is refused before it reaches the engine."""
from __future__ import annotations

import json
import re

import jsonschema
import pytest
from llguidance import LLTokenizer
from llguidance._tokenizer import TokenizerWrapper

from model_router.contract.limits import ModelLimits
from model_router.errors import InputError
from model_router.contract.sampling import SamplingParams, StructuredOutputs
from transformers_backend.batching import ContinuousBatcher
from transformers_backend.kv_rows import TorchRows
from transformers_backend.constraints import Grammars
from transformers_backend.sequence import Sequence

from .test_batching_engine import VOCAB, Record, batch_sizes, model, prompts, reference  # noqa: F401 (fixture)

CHARS = '{}[]":,.-0123456789 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ'  # token i + 1; token 0 ends
EOS = 0
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["ok", "tag", "n"],
          "properties": {"ok": {"type": "boolean"}, "tag": {"enum": ["red", "blue"]},
                         "n": {"type": "integer", "minimum": 0, "maximum": 99}}}


class CharTokenizer:
    """One character a token, as llguidance's TokenizerWrapper reads a tokenizer."""

    eos_token_id, bos_token_id, special_token_ids = EOS, None, [EOS]
    tokens = [b"<eos>"] + [c.encode() for c in CHARS]

    def __call__(self, text: bytes | str) -> list[int]:
        return [CHARS.index(c) + 1 for c in (text.decode() if isinstance(text, bytes) else text)]


def decode(ids: list[int]) -> str:
    return "".join(CHARS[i - 1] for i in ids if i != EOS)


@pytest.fixture(scope="module")
def grammars() -> Grammars:
    assert len(CharTokenizer.tokens) == VOCAB
    return Grammars(lambda: LLTokenizer(TokenizerWrapper(CharTokenizer())), VOCAB)


def constrained(engine, grammars, prompt: list[int], max_tokens: int = 60, sampling: dict | None = None,
                **spec) -> Record:
    sink = Record()
    so = StructuredOutputs.model_validate(spec)
    params = SamplingParams(max_tokens=max_tokens, **(sampling or {}))
    engine.submit(Sequence(prompt, params, sink, constraint=grammars.constraint(so)))
    return sink


def test_a_random_model_answers_within_its_constraint(model, grammars) -> None:
    engine = ContinuousBatcher(TorchRows(model), decode, eos={EOS}, max_batch_size=8, gather_s=0.2)
    try:
        ps = prompts(3)
        as_json = constrained(engine, grammars, ps[0], json=SCHEMA)
        as_regex = constrained(engine, grammars, ps[1], regex=r"[a-c]{3}-[0-9]{2}")
        as_choice = constrained(engine, grammars, ps[2], choice=["yes", "no", "maybe so"])
        for sink in (as_json, as_regex, as_choice):
            assert sink.wait().error is None and sink.final.finish_reason == "stop", (sink.text, sink.error)
    finally:
        engine.close()
    jsonschema.validate(json.loads(as_json.text), SCHEMA)
    assert re.fullmatch(r"[a-c]{3}-[0-9]{2}", as_regex.text), as_regex.text
    assert as_choice.text in ("yes", "no", "maybe so"), as_choice.text


def test_sampled_rows_keep_to_their_constraint(model, grammars) -> None:
    """Rows sampled at temperature 1 (the OpenAI SDK's default), several seeds sharing the batch: the
    grammar's mask holds for sampled choices as for greedy ones, on a random model that left to
    itself would sample anything."""
    engine = ContinuousBatcher(TorchRows(model), decode, eos={EOS}, max_batch_size=8, gather_s=0.2)
    try:
        ps = prompts(4)
        sinks = [constrained(engine, grammars, p, sampling={"temperature": 1.0, "seed": seed}, json=SCHEMA)
                 for seed, p in enumerate(ps)]
        for sink in sinks:
            assert sink.wait().error is None and sink.final.finish_reason == "stop", (sink.text, sink.error)
    finally:
        engine.close()
    for sink in sinks:
        jsonschema.validate(json.loads(sink.text), SCHEMA)
    assert len({sink.text for sink in sinks}) > 1, "every seed gave the same answer: nothing was sampled"


def test_constrained_and_free_rows_share_decode_steps(model, grammars) -> None:
    sizes, handle = batch_sizes(model)
    engine = ContinuousBatcher(TorchRows(model), decode, eos=set(), max_batch_size=8, gather_s=0.2)
    try:
        ps = prompts(3)
        free = [Record(), Record()]
        engine.submit(Sequence(ps[0], SamplingParams(max_tokens=16), free[0]))
        json_row = constrained(engine, grammars, ps[1], json_object=True, max_tokens=40)
        engine.submit(Sequence(ps[2], SamplingParams(max_tokens=16), free[1]))
        for p, sink in zip((ps[0], ps[2]), free):
            assert sink.wait().error is None and sink.text == decode(reference(model, p, 16)), p
        json_row.wait()
    finally:
        engine.close()
        handle.remove()
    assert json_row.error is None and json_row.text.startswith("{"), json_row.text
    assert max(sizes) == 3, sizes  # the three rows in one forward pass


@pytest.mark.parametrize("spec, key", [({"regex": "("}, "regex"), ({"json": {"type": "nonsense"}}, "json"),
                                       ({"grammar": "start: missing_rule"}, "grammar")])
def test_a_constraint_that_cannot_compile_is_the_clients_error(grammars, spec, key) -> None:
    with pytest.raises(InputError) as err:
        grammars.constraint(StructuredOutputs.model_validate(spec))
    assert err.value.field == f"sampling_parameters.structured_outputs.{key}"
    assert "cannot be compiled" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("value, field, problem", [
    ({}, "sampling_parameters.structured_outputs", "exactly one of"),
    ({"regex": "a", "choice": ["b"]}, "sampling_parameters.structured_outputs", "exactly one of"),
    ({"schema": {}}, "sampling_parameters.structured_outputs.schema", "unknown key"),
    ({"json": "{not json"}, "sampling_parameters.structured_outputs.json", "not valid JSON"),
    ({"json": [1]}, "sampling_parameters.structured_outputs.json", "expected a JSON schema"),
    ({"json": {"description": "x" * 40_000}}, "sampling_parameters.structured_outputs.json",
     "exceeds this model's limit of 32768"),
    ({"choice": []}, "sampling_parameters.structured_outputs.choice", "at least 1"),
    ({"choice": ["a"] * 65}, "sampling_parameters.structured_outputs.choice", "at most 64"),
    ({"json_object": "yes"}, "sampling_parameters.structured_outputs.json_object", "true or false"),
    ("{oops", "sampling_parameters.structured_outputs", "not valid JSON"),
])
def test_structured_outputs_are_checked_naming_the_key(value, field, problem) -> None:
    from model_router.contract.sampling import SamplingError, parse_sampling_parameters

    with pytest.raises(SamplingError) as err:
        parse_sampling_parameters({"structured_outputs": value}, ModelLimits(max_schema_bytes=32 * 1024))
    assert err.value.field == field and problem in str(err.value), str(err.value)


@pytest.mark.parametrize("value", [{"json": SCHEMA}, {"json": json.dumps(SCHEMA)}, json.dumps({"json": SCHEMA})])
def test_a_schema_comes_as_an_object_or_as_json_text_as_the_vllm_backend_takes_it(value) -> None:
    from model_router.contract.sampling import parse_sampling_parameters

    spec = parse_sampling_parameters({"structured_outputs": value}).structured_outputs
    assert (spec.kind, spec.json_schema) == ("json", SCHEMA)
