"""The llama.cpp backend (python_backends/llamacpp) on the real server, with the Qwen2.5-Coder GGUF
models: the vLLM backend's contract and sample client, continuous batching seen by the clients and
Triton's metrics port, cancellation seen in /proc, structured outputs checked against their schemas,
the chat template in the file (tools included), and load errors that leave the server serving. The
0.5B model proves each point; the 1.5B is loaded for the sample client only. No exact text: llama.cpp's
kernels differ between CPUs, so answers are checked for structure and facts.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import jsonschema
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client import RouterClient
from launcher import DEFAULT_MODELS_DIR, TritonServer
from model_router import REPO_ROOT

from .conftest import start_server, stop_server
from .observe import goes_quiet, llm_requests, llm_tokens, metric, settled, stub_pid, wait_for
from .test_batching import sample_client_protocol_works, stream_once

pytestmark = pytest.mark.integration
SMALL, LARGE = "qwen2_5_coder_0_5b_instruct", "qwen2_5_coder_1_5b_instruct"
GREEDY = {"max_tokens": 24, "temperature": 0}
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@pytest.fixture(scope="module")
def server() -> Iterator[TritonServer]:
    srv = start_server([SMALL, LARGE])
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def grpc(server: TritonServer) -> Iterator[RouterClient]:
    client = RouterClient(server.grpc_url, "grpc")
    yield client
    client.close()


def ask(server: TritonServer, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
    """One whole (non-streamed) answer of SMALL over gRPC's stream, as a decoupled model answers."""
    results: list = []
    done = threading.Event()
    client = grpcclient.InferenceServerClient(server.grpc_url)

    def collect(result, error) -> None:
        results.append(error or result)
        if error is not None or result.get_response().parameters["triton_final_response"].bool_param:
            done.set()

    client.start_stream(callback=collect)
    tensors = []
    for name, value in inputs.items():
        t = grpcclient.InferInput(name, list(value.shape), "BOOL" if value.dtype == bool else "BYTES")
        t.set_data_from_numpy(value)
        tensors.append(t)
    try:
        client.async_stream_infer(SMALL, tensors, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs],
                                  enable_empty_final_response=True)
        assert done.wait(300), "no final response"
    finally:
        client.stop_stream()
        client.close()
    for got in results:
        if isinstance(got, InferenceServerException):
            raise got
    merged: dict[str, np.ndarray] = {}
    for got in results:
        for o in outputs:
            value = got.as_numpy(o)
            if value is not None and value.size:
                merged[o] = value
    return merged


def text(value: str) -> np.ndarray:
    return np.array([value.encode()], dtype=np.object_)


@pytest.mark.parametrize("model", [SMALL, LARGE])
def test_the_vllm_sample_client_protocol_works_on_each_qwen_model(server: TritonServer, model: str) -> None:
    sample_client_protocol_works(server.grpc_url, model)


def test_answers_carry_facts_and_the_vllm_additional_outputs(server: TritonServer, grpc: RouterClient) -> None:
    assert "paris" in grpc.generate(SMALL, "What is the capital of France? Answer in one word.", GREEDY).lower()
    out = ask(server, {"text_input": text("Count from 1 to 50, separated by commas."),
                       "sampling_parameters": text(json.dumps({"max_tokens": 5, "temperature": 0})),
                       "return_finish_reason": np.array([True]), "return_num_input_tokens": np.array([True]),
                       "return_num_output_tokens": np.array([True])},
              ["text_output", "finish_reason", "num_input_tokens", "num_output_tokens"])
    assert out["finish_reason"].reshape(-1)[0] == b"length"
    assert int(out["num_output_tokens"].reshape(-1)[0]) == 5
    assert int(out["num_input_tokens"].reshape(-1)[0]) > 10  # the chat template's turns around 12 words


def test_a_request_joins_a_batch_already_decoding(server: TritonServer, grpc: RouterClient) -> None:
    """A long answer (ignore_eos, 1000 tokens) is streaming when a short request comes: the short one is
    answered while the long one's client still gets pieces, and Triton's metrics port counts decode
    steps that served both. A batch that took no one in until it drained would keep it waiting."""
    shared_before = settled(lambda: metric(server, "tmr_generation_batch_rows", "_count", model=SMALL, absent=0.0)
                            - metric(server, "tmr_generation_batch_rows", "_bucket", model=SMALL, le="1", absent=0.0))
    arrivals: list[float] = []
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(stream_once, server.grpc_url, "Tell a long story.",
                           {"max_tokens": 1000, "temperature": 0, "ignore_eos": True}, None, arrivals, stop, SMALL)
        try:
            assert wait_for(lambda: bool(arrivals) or long.done(), 300), "the long answer never began"
            short = grpc.generate(SMALL, "Who wrote Hamlet?", {"max_tokens": 6, "temperature": 0})
            still_streaming = not long.done()
        finally:
            stop.set()
        pieces, finals, error = long.result()
    assert short.strip()
    assert still_streaming and (finals, error) == (0, "cancelled by the client"), \
        f"the long answer ended ({len(pieces)} pieces) before the short one was answered"
    shared = lambda: (metric(server, "tmr_generation_batch_rows", "_count", model=SMALL)  # noqa: E731
                      - metric(server, "tmr_generation_batch_rows", "_bucket", model=SMALL, le="1"))
    assert wait_for(lambda: shared() - shared_before >= 2, 30), "no decode step served two requests"


def test_cancelling_stops_decoding_seen_in_the_stubs_cpu(server: TritonServer) -> None:
    """A client leaves after 3 pieces of a 1000-token answer: the request is counted cancelled, the
    stub's CPU (from /proc) goes quiet, and far fewer than 1000 tokens were made."""
    stub = stub_pid(server, SMALL)
    goes_quiet(stub)
    before = settled(lambda: llm_tokens(server, absent=0.0, model=SMALL))
    cancelled = llm_requests(server, "cancelled", absent=0.0, model=SMALL)
    pieces, _, error = stream_once(server.grpc_url, "Tell a long story.",
                                   {"max_tokens": 1000, "temperature": 0, "ignore_eos": True}, 3, model=SMALL)
    assert error == "cancelled by the client" and len(pieces) >= 3
    assert wait_for(lambda: llm_requests(server, "cancelled", absent=0.0, model=SMALL) > cancelled, 60)
    goes_quiet(stub)
    spent = settled(lambda: llm_tokens(server, model=SMALL)) - before
    assert spent < 1000, f"{spent} tokens made for a client that left after 3 pieces"


def test_structured_outputs_hold_greedy_and_sampled(grpc: RouterClient) -> None:
    prompt = "Describe a person named Ann who is 30 years old."
    for sampling in ({"temperature": 0}, {"temperature": 1.0, "seed": 3}, {"temperature": 1.2, "top_p": 0.9}):
        answer = grpc.generate(SMALL, prompt, {**sampling, "max_tokens": 60,
                                               "structured_outputs": {"json": PERSON}})
        jsonschema.validate(json.loads(answer), PERSON)
    # Greedy and with room: a sampled free-form object may still be open when max_tokens cuts it.
    answer = grpc.generate(SMALL, "List two colors.", {"max_tokens": 200, "temperature": 0,
                                                       "structured_outputs": {"json_object": True}})
    assert isinstance(json.loads(answer), dict)
    assert re.fullmatch(r"\d{3}-\d{4}", grpc.generate(SMALL, "A phone number:", {
        "max_tokens": 12, "temperature": 1.0, "structured_outputs": {"regex": r"\d{3}-\d{4}"}}))
    assert grpc.generate(SMALL, "Is the sky green?", {"max_tokens": 5, "temperature": 0.7, "structured_outputs":
                                                      {"choice": ["yes", "no"]}}) in ("yes", "no")


def test_stop_strings_and_seeds_hold_per_request(grpc: RouterClient) -> None:
    count = grpc.generate(SMALL, "Count from 1 to 10, separated by commas.",
                          {"max_tokens": 40, "temperature": 0, "stop": ["5"]})
    assert "4" in count and "5" not in count, count
    sampled = {"max_tokens": 16, "temperature": 1.0, "top_p": 0.95, "seed": 11}
    prompt = "Invent a name for a cat."
    with ThreadPoolExecutor(3) as pool:  # the same seed, twice alone and once beside another request
        together = pool.submit(grpc.generate, SMALL, prompt, sampled)
        pool.submit(grpc.generate, SMALL, "Say hi.", {"max_tokens": 8})
        first = together.result()
    assert grpc.generate(SMALL, prompt, sampled) == grpc.generate(SMALL, prompt, sampled)
    assert first.strip()


def test_the_gguf_chat_template_writes_tools_and_turns(server: TritonServer) -> None:
    """`messages` and `tools` go through the chat template in the file: the prompt the engine counts grows
    by the tool definitions, then by a past call and its result (written by the template, arguments as
    an object); what the model answers next is its own business."""
    turns = [{"role": "user", "content": "What is the weather in Paris?"}]
    history = turns + [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                       {"role": "tool", "tool_call_id": "c1", "content": "18 C and sunny"}]
    counts = []
    for conversation, extra in ((turns, {}), (turns, {"tools": text(json.dumps(WEATHER))}),
                                (history, {"tools": text(json.dumps(WEATHER))})):
        out = ask(server, {"text_input": text("ignored"), "messages": text(json.dumps(conversation)),
                           "sampling_parameters": text(json.dumps({"max_tokens": 1, "temperature": 0})),
                           "return_num_input_tokens": np.array([True]), **extra},
                  ["text_output", "num_input_tokens"])
        counts.append(int(out["num_input_tokens"].reshape(-1)[0]))
    assert counts[1] > counts[0] + 30, f"the tools did not reach the prompt: {counts}"
    assert counts[2] > counts[1] + 15, f"the past call and its result did not reach the prompt: {counts}"
    with pytest.raises(InferenceServerException, match=r"tools\[0\]"):
        ask(server, {"text_input": text("hi"), "tools": text(json.dumps([{"type": "function"}]))}, ["text_output"])


def test_a_bad_or_missing_model_file_is_a_clear_load_error_and_the_others_keep_serving(tmp_path: Path) -> None:
    repo = tmp_path / "models"
    repo.mkdir()
    (repo / SMALL).symlink_to(REPO_ROOT / "model_repository" / SMALL, target_is_directory=True)
    config = (REPO_ROOT / "model_repository" / SMALL / "config.pbtxt").read_text()
    real = f"${{TMR_MODELS}}/qwen2.5-coder-0.5b-instruct/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    assert real in config
    cut = tmp_path / "cut.gguf"  # a real header, the tensors cut off
    with open(DEFAULT_MODELS_DIR / "qwen2.5-coder-0.5b-instruct" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
              "rb") as f:
        cut.write_bytes(f.read(4 << 20))
    broken = {"missing_gguf": str(tmp_path / "nowhere.gguf"), "cut_gguf": str(cut)}
    for name, path in broken.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "config.pbtxt").write_text(config.replace(real, path))
    srv = TritonServer(model_repository=repo, load=[SMALL], env={"TMR_CACHE_URL": "off"}).start(timeout=300)
    try:
        client, control = RouterClient(srv.grpc_url, "grpc"), grpcclient.InferenceServerClient(srv.grpc_url)
        for name, path in broken.items():
            with pytest.raises(InferenceServerException) as raised:
                control.load_model(name)
            assert "model_path" in str(raised.value) and path in str(raised.value), raised.value
        assert "paris" in client.generate(SMALL, "What is the capital of France? One word.", GREEDY).lower()
        client.close()
        control.close()
    finally:
        stop_server(srv)
    shutil.rmtree(repo, ignore_errors=True)
