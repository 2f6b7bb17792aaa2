"""The transformers backend's speech tasks (the GPU profile's Whisper large-v3 and Bark entries)
on a real server: the GPU configs themselves, moved to the CPU and pointed at tiny random models."""
from __future__ import annotations

import io
import json
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from client import RouterClient
from launcher import TritonServer
from model_router import REPO_ROOT
from model_router.media.speech import synthesize

from ..tiny_models import WHISPER_TOKENIZER, tiny_vits, tiny_whisper
from .conftest import start_server, stop_server

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not WHISPER_TOKENIZER.exists(), reason="run scripts/setup.sh first")]
STT, TTS = "stt_whisper_large_v3", "tts_bark"


def _cpu_copy(name: str, repo: Path, model_path: Path) -> None:
    config = (REPO_ROOT / "model_repository_gpu" / name / "config.pbtxt").read_text()
    config = config.replace("KIND_GPU", "KIND_CPU")
    config = re.sub(r'(key: "model_path" value: \{ string_value: )"[^"]*"', rf'\1"{model_path}"', config)
    config = re.sub(r'(key: "dtype" value: \{ string_value: )"[^"]*"', r'\1"float32"', config)
    (repo / name / "1").mkdir(parents=True)
    (repo / name / "config.pbtxt").write_text(config)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """The tiny random checkpoints, made once for the module."""
    tmp = tmp_path_factory.mktemp("tiny")
    return {STT: tiny_whisper(tmp / "whisper"), TTS: tiny_vits(tmp / "vits")}


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory, tiny: dict[str, Path]):
    repo = tmp_path_factory.mktemp("speech") / "repo"
    _cpu_copy(STT, repo, tiny[STT])
    _cpu_copy(TTS, repo, tiny[TTS])
    srv = start_server([STT, TTS], extra_args=[f"--model-repository={repo}"])
    yield srv
    stop_server(srv)


def _infer(srv: TritonServer, model: str, inputs: dict[str, bytes], outputs: list[str]) -> dict[str, bytes]:
    client = grpcclient.InferenceServerClient(srv.grpc_url)
    tensors = []
    for name, value in inputs.items():
        t = grpcclient.InferInput(name, [1], "BYTES")
        t.set_data_from_numpy(np.array([value], dtype=np.object_))
        tensors.append(t)
    result = client.infer(model, tensors, outputs=[grpcclient.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o).reshape(-1)[0] for o in outputs}


def test_whisper_task_transcribes_with_language_and_segments(speech_server, tiny: dict[str, Path]) -> None:
    from transformers_backend.speech_recognition import SpeechRecognizer

    wav = synthesize("Good morning everyone", "en").wav
    out = _infer(speech_server, STT, {"audio": wav}, ["text_output", "language", "segments"])
    # Random weights say nothing useful, but the contract holds: the language is one of the checkpoint's
    # own language tokens, the one it detects on this audio (run here, in process, on the same weights) ...
    config = json.loads((tiny[STT] / "generation_config.json").read_text())
    languages = {token.strip("<|>") for token in config["lang_to_id"]}
    language = out["language"].decode()
    assert language in languages, out
    detected = SpeechRecognizer(str(tiny[STT])).transcribe(wav).language
    assert language == detected, (language, detected)
    # ... and the transcript comes with its segments: some, ordered, well formed, and the text is theirs.
    text, segments = out["text_output"].decode(), json.loads(out["segments"])
    assert text and segments, out
    assert all(0 <= s["start"] <= s["end"] for s in segments), segments
    assert [s["start"] for s in segments] == sorted(s["start"] for s in segments), segments
    assert "".join(s["text"] for s in segments).replace(" ", "") == text.replace(" ", ""), (text, segments)


def test_whisper_task_decodes_in_the_language_it_is_given(speech_server) -> None:
    wav = synthesize("नमस्ते", "hi").wav
    assert _infer(speech_server, STT, {"audio": wav, "language": b"hi"}, ["language"])["language"] == b"hi"
    # The hint reaches the decoder (it is not only echoed back): one Whisper does not know is refused there.
    with pytest.raises(InferenceServerException, match="Unsupported language: xx"):
        _infer(speech_server, STT, {"audio": wav, "language": b"xx"}, ["language"])


def test_whisper_task_rejects_corrupt_audio_and_keeps_serving(speech_server) -> None:
    with pytest.raises(InferenceServerException, match="audio: cannot decode"):
        _infer(speech_server, STT, {"audio": b"RIFF broken"}, ["text_output"])
    assert RouterClient(speech_server.http_url).is_ready(STT)


def test_tts_task_makes_a_wav_of_its_sample_rate(speech_server) -> None:
    out = _infer(speech_server, TTS, {"text": "hello world, this is a test."}, ["audio", "sample_rate", "visemes"])
    w = wave.open(io.BytesIO(out["audio"]))
    assert w.getframerate() == 16000 and w.getnframes() > 1000 and out["visemes"] == b"[]"
    with pytest.raises(InferenceServerException, match="text: nothing to say"):
        _infer(speech_server, TTS, {"text": "   "}, ["audio"])
