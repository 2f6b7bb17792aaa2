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
def speech_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("speech")
    repo = tmp / "repo"
    _cpu_copy(STT, repo, tiny_whisper(tmp / "whisper"))
    _cpu_copy(TTS, repo, tiny_vits(tmp / "vits"))
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


def test_whisper_task_transcribes_with_language_and_segments(speech_server) -> None:
    out = _infer(speech_server, STT, {"audio": synthesize("Good morning everyone", "en").wav},
                 ["text_output", "language", "segments"])
    # Random weights say nothing useful, but the contract holds: a detected language token and
    # well-formed, ordered segments.
    assert re.fullmatch(r"[a-z]{2,3}|haw|yue", out["language"].decode()), out
    segments = json.loads(out["segments"])
    assert isinstance(segments, list) and all(s["start"] <= s["end"] for s in segments)
    hinted = _infer(speech_server, STT, {"audio": synthesize("नमस्ते", "hi").wav, "language": b"hi"}, ["language"])
    assert hinted["language"] == b"hi"


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
