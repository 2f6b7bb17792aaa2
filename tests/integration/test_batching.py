"""Continuous batching in our transformers backend, on the real server: correct before fast.

Every request in a batch keeps what it has alone: its greedy answer token for token, its own stream,
stop strings, max_tokens, seed, cancellation and errors. That requests really share decode steps is
seen from outside the backend: by the clients (the pieces of concurrent streams arrive interleaved,
not one answer after another; a short request sent during a long answer is answered before it ends)
and by Triton's metrics port. Speed is measured by scripts/bench_batching.py.
"""
from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from client import RouterClient

from .conftest import LLM
from .observe import llm_requests, llm_tokens, metric, settled, wait_for

pytestmark = pytest.mark.integration
GREEDY = {"max_tokens": 24, "temperature": 0}
PROMPTS = ["What is the capital of France?", "Name three rivers in India.",
           "Summarize in one sentence: " + "The monsoon brings rain to India every summer. " * 40,
           "Write a haiku about the sea.", "Who wrote Hamlet?", "What is 12 times 7?"]


def _inputs(prompt: str, sampling: dict, stream: bool) -> list:
    values = {"text_input": np.array([prompt.encode()], dtype=np.object_), "stream": np.array([stream]),
              "sampling_parameters": np.array([json.dumps(sampling).encode()], dtype=np.object_),
              "exclude_input_in_output": np.array([True])}
    out = []
    for name, value in values.items():
        t = grpcclient.InferInput(name, [1], "BOOL" if value.dtype == bool else "BYTES")
        t.set_data_from_numpy(value)
        out.append(t)
    return out


def stream_once(url: str, prompt: str, sampling: dict, cancel_after: int | None = None,
                arrivals: list[float] | None = None, stop: threading.Event | None = None,
                model: str = LLM) -> tuple[list[str], int, str]:
    """One streamed request on its own gRPC stream: (pieces, final responses seen, error). `arrivals`
    gets the client's clock (time.monotonic) at each response that carried a piece; once `stop` is set,
    the client cancels the request at its next response."""
    results: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url)
    client.start_stream(callback=lambda result, error: results.put((result, error, time.monotonic())))
    pieces, finals, error = [], 0, ""
    arrivals = arrivals if arrivals is not None else []
    try:
        client.async_stream_infer(model, _inputs(prompt, sampling, True), enable_empty_final_response=True)
        while True:
            result, err, at = results.get(timeout=300)
            if err is not None:
                return pieces, finals, str(err)
            text = result.as_numpy("text_output")
            if text is not None:
                pieces.extend(v.decode() for v in text.reshape(-1))
                arrivals.append(at)
            if result.get_response().parameters["triton_final_response"].bool_param:
                finals += 1
                break
            if cancel_after is not None and len(pieces) >= cancel_after or stop is not None and stop.is_set():
                error = "cancelled by the client"
                break
    finally:
        # Cancel only an unfinished answer: a cancellation after the last response leaves Triton 24.10
        # holding the model (client.api.RouterClient.stream_responses).
        client.stop_stream(cancel_requests=bool(error))
        client.close()
    return pieces, finals, error


def alone(url: str, prompts: list[str], sampling: dict) -> list[str]:
    client = RouterClient(url, "grpc")
    return [client.generate(LLM, p, sampling) for p in prompts]


def together(fn, args: list[tuple]) -> list:
    with ThreadPoolExecutor(len(args)) as pool:
        return list(pool.map(lambda a: fn(*a), args))


def multi_row_steps(server, absent: float | None = None) -> float:
    """Decode steps that served more than one request, from Triton's metrics port (the backend's histogram
    of rows per step: every step minus those in the le="1" bucket)."""
    return (metric(server, "tmr_generation_batch_rows", "_count", model=LLM, absent=absent)
            - metric(server, "tmr_generation_batch_rows", "_bucket", model=LLM, le="1", absent=absent))


def most_at_once(arrivals: list[list[float]]) -> int:
    """The most streams that were between their first and their last piece at one moment."""
    spans = [(a[0], a[-1]) for a in arrivals if a]
    return max(sum(start <= t <= end for start, end in spans) for t, _ in spans)


def switches(arrivals: list[list[float]]) -> int:
    """How often the next piece to arrive, over all streams in time order, belongs to another stream
    than the one before: N-1 when the answers come one after another."""
    order = [i for _, i in sorted((t, i) for i, a in enumerate(arrivals) for t in a)]
    return sum(a != b for a, b in zip(order, order[1:]))


def test_greedy_answers_are_the_same_alone_and_in_a_batch(server) -> None:
    one_by_one = alone(server.grpc_url, PROMPTS, GREEDY)
    batched_steps = multi_row_steps(server, absent=0.0)
    client = RouterClient(server.grpc_url, "grpc")
    at_once = together(lambda p: client.generate(LLM, p, GREEDY), [(p,) for p in PROMPTS])
    assert at_once == one_by_one
    assert all(one_by_one) and "Paris" in one_by_one[0]
    # The backend ships its counts on a thread of its own: the last of them may come after the answers.
    assert wait_for(lambda: multi_row_steps(server) - batched_steps >= 10, 30), \
        "the requests never shared a step: nothing was batched"


def test_concurrent_streams_share_decode_steps_seen_by_their_clients(server) -> None:
    """Six streams sent at once: with batching their pieces arrive interleaved, all six under way at
    the same moment; one request at a time would give six answers back to back (one stream under way
    at any moment, five switches). Counted on the clients' clocks, not timed."""
    sampling = {"max_tokens": 32, "temperature": 0, "ignore_eos": True}
    arrivals: list[list[float]] = [[] for _ in PROMPTS]
    streams = together(stream_once, [(server.grpc_url, p, sampling, None, a) for p, a in zip(PROMPTS, arrivals)])
    assert all(error == "" and finals == 1 for _, finals, error in streams), streams
    assert most_at_once(arrivals) >= 3, f"at most {most_at_once(arrivals)} of {len(PROMPTS)} streams under way at once"
    assert switches(arrivals) >= 4 * len(PROMPTS), f"the streams' pieces switched only {switches(arrivals)} times"


def test_a_short_request_joins_a_long_answer_under_way_and_ends_first(server, grpc) -> None:
    """A long answer (ignore_eos, 1000 tokens) is streaming when a short request (4 tokens) comes: the
    short one joins the running batch and is answered while the long one's client still gets pieces.
    A batch that took no one in until it drained would keep the short one waiting for the whole long
    answer. Shown by order on the clients: the long stream is still open (then cancelled) when the short
    answer is complete."""
    long_sampling = {"max_tokens": 1000, "temperature": 0, "ignore_eos": True}
    arrivals: list[float] = []
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        long = pool.submit(stream_once, server.grpc_url, PROMPTS[0], long_sampling, None, arrivals, stop)
        try:
            assert wait_for(lambda: bool(arrivals) or long.done(), 300), "the long answer never began"
            short = grpc.generate(LLM, PROMPTS[4], {"max_tokens": 4, "temperature": 0})
            still_streaming = not long.done()
        finally:
            stop.set()
        pieces, finals, error = long.result()
    assert short.strip(), short
    assert still_streaming and (finals, error) == (0, "cancelled by the client"), \
        f"the long answer ended ({len(pieces)} pieces) before the short one, sent after its first piece, was answered"


def test_concurrent_streams_never_mix_and_each_ends_once(server) -> None:
    expected = alone(server.grpc_url, PROMPTS, GREEDY)
    streams = together(stream_once, [(server.grpc_url, p, GREEDY) for p in PROMPTS])
    for (pieces, finals, error), want in zip(streams, expected):
        assert error == "" and finals == 1
        assert "".join(pieces) == want and len(pieces) > 1  # token by token, in order


def test_stop_max_tokens_errors_and_cancellation_stay_per_request(server) -> None:
    stop = {"max_tokens": 40, "temperature": 0, "stop": ["5"]}
    short = {"max_tokens": 3, "temperature": 0}
    count = "Count from 1 to 10 separated by commas."
    [want_stop], [want_short], [want_plain] = (alone(server.grpc_url, [count], stop),
                                               alone(server.grpc_url, [PROMPTS[1]], short),
                                               alone(server.grpc_url, [PROMPTS[0]], GREEDY))
    cancelled_before = llm_requests(server, "cancelled", absent=0.0)
    jobs = [(server.grpc_url, count, stop), (server.grpc_url, PROMPTS[1], short),
            (server.grpc_url, "word " * 3000, GREEDY), (server.grpc_url, PROMPTS[3], {"max_tokens": 400}, 2),
            (server.grpc_url, PROMPTS[0], GREEDY)]
    (s_pieces, _, s_err), (m_pieces, _, m_err), (_, _, bad), (c_pieces, _, c_err), (p_pieces, _, p_err) = \
        together(stream_once, jobs)
    assert "".join(s_pieces) == want_stop and "5" not in want_stop and "4" in want_stop and not s_err
    assert "".join(m_pieces) == want_short and not m_err
    assert "text_input:" in bad and "tokens: over the limit of 2048" in bad
    assert c_err == "cancelled by the client" and len(c_pieces) >= 2
    assert "".join(p_pieces) == want_plain and not p_err
    assert wait_for(lambda: llm_requests(server, "cancelled", absent=0.0) >= cancelled_before + 1, 30), \
        "the cancelled request was never counted out of the batch"


def test_a_cancelled_request_stops_generating_at_once(server) -> None:
    tokens_before = settled(lambda: llm_tokens(server, absent=0.0))  # an earlier test's counts shipped
    cancelled_before = llm_requests(server, "cancelled", absent=0.0)
    together(stream_once, [(server.grpc_url, p, {"max_tokens": 400, "temperature": 0}, 3) for p in PROMPTS[:2]])
    assert wait_for(lambda: llm_requests(server, "cancelled", absent=0.0) >= cancelled_before + 2, 30), \
        "the cancelled requests never left the batch"
    spent = llm_tokens(server) - tokens_before
    assert spent < 100, f"{spent} tokens generated for two requests abandoned after 3 pieces of 400"
    time.sleep(1.0)
    assert llm_tokens(server) - tokens_before == spent  # nothing runs on


def test_a_seed_repeats_its_own_sample_and_differs_from_greedy_and_other_seeds(server) -> None:
    """Twenty draws with seed 7, sent together with draws of seed 8 (so that they share steps with
    another seed's rows): every seed-7 answer is the same, and it is neither greedy's nor seed 8's."""
    prompt = "Tell me a short story about a cat."
    sampled = {"max_tokens": 16, "temperature": 1.0, "top_p": 0.95}
    [greedy] = alone(server.grpc_url, [prompt], {"max_tokens": 16, "temperature": 0})
    client = RouterClient(server.grpc_url, "grpc")
    seeds = [7, 8] * 20
    answers = together(lambda seed: client.generate(LLM, prompt, {**sampled, "seed": seed}), [(s,) for s in seeds])
    sevens = {a for a, s in zip(answers, seeds) if s == 7}
    eights = {a for a, s in zip(answers, seeds) if s == 8}
    assert len(sevens) == 1 and len(eights) == 1, (sevens, eights)
    assert sevens != {greedy} and sevens != eights, (greedy, sevens, eights)
    assert sevens == {client.generate(LLM, prompt, {**sampled, "seed": 7})}  # and alone


def test_the_vllm_sample_client_protocol_works(server) -> None:
    sample_client_protocol_works(server.grpc_url, LLM)


def sample_client_protocol_works(url: str, model: str) -> None:
    """What the vLLM backend's samples/client.py does: several prompts on one gRPC stream, string-valued
    sampling parameters as a tensor and as request parameters, answers told apart by request id."""
    sampling = {"temperature": "0.1", "top_p": "0.95", "max_tokens": "16"}
    prompts = ["Hello, my name is", "The most dangerous animal is", "The capital of France is",
               "The future of AI is"]

    async def run(streaming: bool) -> dict[str, list[str]]:
        client = grpcaio.InferenceServerClient(url)
        answers: dict[str, list[str]] = {str(i): [] for i in range(len(prompts))}

        async def requests():
            for i, prompt in enumerate(prompts):
                inputs = _inputs(prompt, sampling, streaming)[:3]  # text_input, stream, sampling_parameters
                yield {"model_name": model, "inputs": inputs, "outputs": [grpcaio.InferRequestedOutput("text_output")],
                       "request_id": str(i), "parameters": sampling}

        async for result, error in client.stream_infer(inputs_iterator=requests(), stream_timeout=300):
            assert error is None, error  # the stream ends when every request on it has answered
            answers[result.get_response().id].extend(v.decode() for v in result.as_numpy("text_output"))
        await client.close()
        return answers

    whole = asyncio.run(run(False))
    assert all(len(v) == 1 and v[0].strip() for v in whole.values()), whole
    assert whole["2"][0].startswith("The capital of France is")  # the prompt comes back unless excluded
    pieces = asyncio.run(run(True))
    assert all(len(v) > 1 for v in pieces.values()), pieces  # each prompt's own tokens, streamed

