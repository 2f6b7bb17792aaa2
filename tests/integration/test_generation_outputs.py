"""The vLLM backend's additional outputs from our transformers backend, on the real server over gRPC:
finish_reason, num_input_tokens, num_output_tokens (per response) and cumulative_logprob.

Checked against what the test knows without the backend: the prompt's token count from the model's
own tokenizer and chat template, max_tokens, and the model's greedy answer asked again with one
token less (an answer that ended on its end-of-sequence token after n tokens is cut by length at
n - 1, with the same text).
"""
from __future__ import annotations

import json
import math
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from launcher import DEFAULT_MODELS_DIR

from .conftest import LLM

pytestmark = pytest.mark.integration
RETURNS = ("finish_reason", "num_input_tokens", "num_output_tokens", "cumulative_logprob")
LONG = "Count from 1 to 100, separated by commas."
SHORT = "What is the capital of France? Answer with one word."


def _inputs(prompt: str, sampling: dict, stream: bool, returns: tuple[str, ...] = RETURNS) -> list:
    values = {"text_input": np.array([prompt.encode()], dtype=np.object_), "stream": np.array([stream]),
              "sampling_parameters": np.array([json.dumps(sampling).encode()], dtype=np.object_),
              "exclude_input_in_output": np.array([True])}
    values.update({f"return_{name}": np.array([True]) for name in returns})
    tensors = []
    for name, value in values.items():
        t = grpcclient.InferInput(name, [1], "BOOL" if value.dtype == bool else "BYTES")
        t.set_data_from_numpy(value)
        tensors.append(t)
    return tensors


def responses(url: str, prompt: str, sampling: dict, stream: bool, returns: tuple[str, ...] = RETURNS) -> list[dict]:
    """Every response of one request on its own gRPC stream, each as {output name: its one value}."""
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    out = []
    try:
        client.async_stream_infer(LLM, _inputs(prompt, sampling, stream, returns), enable_empty_final_response=True)
        while True:
            result, error = results.get(timeout=300)
            if error is not None:
                raise error
            outputs = {o.name: result.as_numpy(o.name).reshape(-1)[0] for o in result.get_response().outputs}
            if outputs:
                out.append(outputs)
            if result.get_response().parameters["triton_final_response"].bool_param:
                return out
    finally:
        client.stop_stream()
        client.close()


def prompt_tokens(prompt: str) -> int:
    """The prompt's tokens after the model's chat template, counted by its own tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(DEFAULT_MODELS_DIR / "smollm2-135m-instruct")
    return len(tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       return_dict=True)["input_ids"])


def text(rs: list[dict]) -> str:
    return "".join(r["text_output"].decode() for r in rs)


def test_streamed_answer_cut_by_max_tokens_says_length_and_counts_each_token(server) -> None:
    rs = responses(server.grpc_url, LONG, {"max_tokens": 12, "temperature": 0}, stream=True)
    assert len(rs) > 2 and all(set(RETURNS) <= set(r) for r in rs), rs  # on every response, as vLLM sends them
    reasons = [r["finish_reason"].decode() for r in rs]
    assert reasons[-1] == "length" and set(reasons[:-1]) == {""}, reasons
    assert sum(int(r["num_output_tokens"]) for r in rs) == 12, rs
    assert {int(r["num_input_tokens"]) for r in rs} == {prompt_tokens(LONG)}, rs
    logprobs = [float(r["cumulative_logprob"]) for r in rs]
    assert all(math.isfinite(v) and v <= 0 for v in logprobs) and logprobs == sorted(logprobs, reverse=True), logprobs


def test_an_answer_that_ends_by_itself_says_stop(server) -> None:
    sampling = {"max_tokens": 200, "temperature": 0}
    (whole,) = responses(server.grpc_url, SHORT, sampling, stream=False)
    made = int(whole["num_output_tokens"])
    assert whole["finish_reason"] == b"stop" and 1 < made < 200, whole
    assert int(whole["num_input_tokens"]) == prompt_tokens(SHORT)
    # The count holds its end-of-sequence token (as vLLM counts it): one token less is the same text, cut by length.
    (cut,) = responses(server.grpc_url, SHORT, {**sampling, "max_tokens": made - 1}, stream=False)
    assert (cut["finish_reason"], int(cut["num_output_tokens"])) == (b"length", made - 1), cut
    assert cut["text_output"] == whole["text_output"], (cut, whole)
    # The same request streamed counts the same tokens, response by response.
    streamed = responses(server.grpc_url, SHORT, sampling, stream=True)
    assert sum(int(r["num_output_tokens"]) for r in streamed) == made
    assert text(streamed) == whole["text_output"].decode()
    assert streamed[-1]["finish_reason"] == b"stop"


def test_outputs_not_asked_for_are_not_sent(server) -> None:
    """A client of the vLLM contract that asks for nothing extra (its samples/client.py) gets what it got
    before: text_output only, and in a stream no final response beyond the empty one."""
    (whole,) = responses(server.grpc_url, SHORT, {"temperature": "0.1", "top_p": "0.95", "max_tokens": "100"},
                         stream=False, returns=())
    assert set(whole) == {"text_output"} and whole["text_output"].strip(), whole
    streamed = responses(server.grpc_url, LONG, {"max_tokens": 8, "temperature": 0}, stream=True, returns=())
    assert all(set(r) == {"text_output"} and r["text_output"] for r in streamed), streamed
    # Asking for one output brings that one alone.
    (one,) = responses(server.grpc_url, SHORT, {"max_tokens": 4, "temperature": 0}, stream=False,
                       returns=("num_output_tokens",))
    assert set(one) == {"text_output", "num_output_tokens"} and int(one["num_output_tokens"]) <= 4, one


PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "languages"],
          "properties": {"name": {"type": "string", "maxLength": 40},
                         "age": {"type": "integer", "minimum": 0, "maximum": 130},
                         "languages": {"type": "array", "items": {"enum": ["en", "fr", "de", "hi"]},
                                       "minItems": 1, "maxItems": 3}}}


@pytest.mark.parametrize("prompt", ["Describe a person as JSON.", "Décris une personne en JSON."])
def test_structured_output_is_json_valid_under_its_schema(server, prompt) -> None:
    import jsonschema

    sampling = {"max_tokens": 120, "temperature": 0, "structured_outputs": {"json": PERSON}}
    (whole,) = responses(server.grpc_url, prompt, sampling, stream=False)
    assert whole["finish_reason"] == b"stop", whole
    jsonschema.validate(json.loads(whole["text_output"]), PERSON)


def test_a_schema_that_cannot_compile_is_refused_naming_its_key(server) -> None:
    from tritonclient.utils import InferenceServerException

    from model_router.contract.errors import ErrorKind, WireError

    sampling = {"max_tokens": 8, "structured_outputs": {"json": {"type": "nonsense"}}}
    with pytest.raises(InferenceServerException) as err:
        responses(server.grpc_url, SHORT, sampling, stream=False)
    wire = WireError.parse(err.value.message(), err.value.status())
    assert (wire.kind, wire.field) == (ErrorKind.BAD_INPUT, "sampling_parameters.structured_outputs.json"), wire
