"""The llama.cpp engine in a plain process, with the Qwen2.5-Coder-0.5B GGUF file that
scripts/prepare_models.py prepares: sequence ids and KV cells come back when requests leave (seen
through llama.cpp's own memory API), limits are the client's errors, the file's chat template renders
tools and past calls, and files that cannot be served are refused by name."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import llama_cpp
import pytest

from launcher import DEFAULT_MODELS_DIR
from llamacpp_backend.gguf import GGUFModel, ModelFileError
from model_router.tools.prompt import template_turn
from llamacpp_backend.text_generation import LlamaTextGenerator
from model_router.errors import InputError
from model_router.contract.limits import ModelLimits
from model_router.contract.sampling import parse_sampling_parameters

LIMITS = ModelLimits(max_output_tokens=1024)
GGUF = DEFAULT_MODELS_DIR / "qwen2.5-coder-0.5b-instruct" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
WEATHER = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def engine() -> LlamaTextGenerator:
    assert GGUF.exists(), f"{GGUF} is missing: run scripts/setup.sh (scripts/prepare_models.py)"
    gen = LlamaTextGenerator(str(GGUF), threads=2, max_batch_size=2, max_batch_tokens=1024, max_input_tokens=512)
    yield gen
    gen.close()


class Sink:
    def __init__(self) -> None:
        self.text, self.reason, self.error, self.done = "", None, None, threading.Event()

    def piece(self, out) -> None:
        self.text += out.text

    def end(self, out, error=None) -> None:
        self.reason, self.error = out.finish_reason, error
        self.done.set()


def run(engine: LlamaTextGenerator, prompt: str, sampling: str) -> Sink:
    sink = Sink()
    engine.submit(prompt, parse_sampling_parameters(sampling, LIMITS), sink)
    assert sink.done.wait(120), "no end within 120 s"
    return sink


def test_sequences_and_kv_cells_come_back_when_requests_leave(engine: LlamaTextGenerator) -> None:
    """Five requests one after another through a context of two sequence ids: each answers, and after
    each the KV cache holds no cell of any sequence (llama.cpp's own account of its memory)."""
    for i in range(5):
        sink = run(engine, f"Say the number {i}.", '{"max_tokens": 4, "temperature": 0}')
        assert sink.error is None and sink.reason in ("stop", "length")
        positions = lambda: [llama_cpp.llama_memory_seq_pos_max(engine.model.memory, s)  # noqa: E731
                             for s in range(engine.model.n_seq)]
        deadline = time.monotonic() + 30  # the row leaves the batch just after its end is told
        while positions() != [-1] * engine.model.n_seq and time.monotonic() < deadline:
            time.sleep(0.01)
        assert positions() == [-1] * engine.model.n_seq, f"cells left after request {i}: {positions()}"


def test_a_request_that_leaves_a_running_batch_frees_its_cells_alone(engine: LlamaTextGenerator) -> None:
    """A short request ends beside a long one: its cells are freed while the long one keeps its own."""
    stop, long, short = threading.Event(), Sink(), Sink()
    engine.submit("Tell a long story.", parse_sampling_parameters('{"max_tokens": 400, "ignore_eos": true}', LIMITS),
                  long, stop.is_set)
    engine.submit("Hi", parse_sampling_parameters('{"max_tokens": 2, "ignore_eos": true}', LIMITS), short)
    try:
        assert short.done.wait(120) and short.error is None
        held = lambda: [s for s in range(engine.model.n_seq)  # noqa: E731
                        if llama_cpp.llama_memory_seq_pos_max(engine.model.memory, s) >= 0]
        deadline = time.monotonic() + 30
        while len(held()) != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not long.done.is_set() and len(held()) == 1, f"sequences holding cells: {held()}"
    finally:
        stop.set()
    assert long.done.wait(120) and long.reason == "abort"


def test_limits_are_the_clients_errors(engine: LlamaTextGenerator) -> None:
    with pytest.raises(InputError, match="text_input.*limit of 512"):
        engine.submit("word " * 600, parse_sampling_parameters('{"max_tokens": 4}', LIMITS), Sink())
    with pytest.raises(InputError, match="max_tokens.*1024 tokens"):
        engine.submit("Hi", parse_sampling_parameters('{"max_tokens": 1020}', LIMITS), Sink())


def test_the_chat_template_in_the_file_writes_tools_and_past_calls(engine: LlamaTextGenerator) -> None:
    turns = [{"role": "user", "content": "Weather in Paris?"}]
    plain = engine.model.render(turns)
    with_tools = engine.model.render(turns, WEATHER)
    assert "get_weather" not in plain and '"name": "get_weather"' in with_tools and "<tools>" in with_tools
    call = {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    rendered = engine.model.render(turns + [call, {"role": "tool", "tool_call_id": "c1", "content": "18 C"}], WEATHER)
    assert '"arguments": {"city": "Paris"}' in rendered and "18 C" in rendered
    assert rendered.endswith("<|im_start|>assistant\n")


def test_a_model_unloaded_right_after_its_load_closes_cleanly() -> None:
    """Unloaded while its grammar tokenizer is still being read from the vocabulary (a second or so
    after the load): the close waits for it rather than free the vocabulary under it (a SIGSEGV).
    In a child process, so that a crash is this test's failure."""
    backends = Path(__file__).resolve().parents[2] / "python_backends"
    code = (f"import sys; sys.path[:0] = [{str(backends / 'llamacpp')!r}, {str(backends / 'transformers')!r}]\n"
            "from llamacpp_backend.text_generation import LlamaTextGenerator\n"
            f"for _ in range(3): LlamaTextGenerator({str(GGUF)!r}, threads=1, max_batch_tokens=512).close()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"


def test_arguments_that_are_not_json_stay_text() -> None:
    turn = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "not json"}}]}
    assert template_turn(turn)["tool_calls"][0]["function"]["arguments"] == "not json"


def test_files_that_cannot_be_served_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="no model file"):
        GGUFModel(str(tmp_path / "none.gguf"), 256, 1)
    text = tmp_path / "text.gguf"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        GGUFModel(str(text), 256, 1)
    cut = tmp_path / "cut.gguf"
    with open(GGUF, "rb") as f:
        cut.write_bytes(f.read(1 << 20))
    with pytest.raises(ModelFileError, match="could not load"):
        GGUFModel(str(cut), 256, 1)
