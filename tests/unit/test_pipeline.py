"""Multi-step use cases (image, video, avatar, voice input) with plain functions for every model."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from model_router.contract.router import RouterRequest
from model_router.errors import InputError, ServingError, TargetError, never
from model_router.registry import load_registry
from model_router.routing.router import Router
from model_router.serving.health import HealthTracker
from model_router.serving.loader import ModelLoader
from model_router.contract.tensors import strings

from .test_loader import RecordingControl
from .test_router import classification, unpack

LLM = "smollm2_135m_instruct"
VISEMES = [{"start": 0.0, "end": 0.2, "phoneme": "", "viseme": "sil"}, {"start": 0.2, "end": 0.5, "phoneme": "h", "viseme": "kk"}]


def build(use_case: str, broken: frozenset[str] = frozenset(), bad_input: frozenset[str] = frozenset(),
          media: tuple[str, ...] = ()):
    reg = load_registry()
    if media:
        reg.models[LLM] = reg.models[LLM].model_copy(update={"media": media})
    managed = {m.name: (m.memory_mb, m.gpu_memory_mb, m.pinned) for m in reg.models.values() if "cpu" in m.profiles}
    calls: list[tuple[str, dict]] = []

    def invoke(spec, inputs, stream, timeout_s, outputs, cancelled=never, gone=None):
        calls.append((spec.name, inputs))
        if spec.name in broken:
            raise TargetError(f"{spec.name}: boom")
        if spec.name in bad_input:
            raise InputError("image[0]", "cannot decode")
        if spec.name == "ocr_tesseract":
            n = inputs["image"].size
            yield {"text_output": strings(*[f"SIGN {i // 2}" for i in range(n)])}  # frames 0,1 say SIGN 0; 2,3 SIGN 1
        elif spec.name == "video_frames":
            yield {"images": strings(b"f0", b"f1", b"f2", b"f3"), "times": np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32)}
        elif spec.name == "stt_whisper_base":
            yield {"text_output": strings("what time is it")}
        elif spec.name == "tts_espeak":
            yield {"audio": strings(b"RIFFwav"), "visemes": strings(json.dumps(VISEMES))}
        else:
            yield {"text_output": strings("An answer.")}

    router = Router(reg, "cpu", lambda text, kinds: classification(use_case), invoke,
                    ModelLoader(RecordingControl(), managed, 6000), HealthTracker(threshold=1, cooldown_s=60))
    return router, calls


def route(router: Router, text: str = "", stream: bool = False, **attachments: bytes):
    return list(router.route(RouterRequest.of(text, json.dumps({"stream": stream}), attachments)))


def prompt_of(calls: list, model: str = LLM) -> str:
    return next(i["text_input"][0].decode() for m, i in calls if m == model)


def test_image_without_a_vision_model_is_read_by_ocr_and_said_degraded() -> None:
    router, calls = build("multimodal")
    decision, text, extras = unpack(route(router, "What does the sign say?", image=b"png")[-1])
    assert [m for m, _ in calls] == ["ocr_tesseract", LLM]
    assert "SIGN 0" in prompt_of(calls) and "What does the sign say?" in prompt_of(calls)
    assert text == "Read from the image: “SIGN 0”\n\nAn answer." and extras == {}
    assert decision["steps"][0]["step"] == "read_image" and decision["steps"][0]["model"] == "ocr_tesseract"
    assert "read with OCR" in decision["degraded"][0]


def test_image_goes_to_a_model_that_takes_images_itself() -> None:
    router, calls = build("multimodal", media=("image",))
    decision, text, _ = unpack(route(router, "What is this?", image=b"png-bytes")[-1])
    assert [m for m, _ in calls] == [LLM] and decision["degraded"] == [] and text == "An answer."
    assert base64.b64decode(calls[0][1]["image"][0]) == b"png-bytes"


def test_video_frames_are_read_and_repeats_merged() -> None:
    router, calls = build("video")
    decision, text, _ = unpack(route(router, video=b"mp4")[-1])
    assert [m for m, _ in calls] == ["video_frames", "ocr_tesseract", LLM]
    assert calls[1][1]["image"].size == 4  # all frames in one OCR call
    assert "0.5 s: SIGN 0\n2.5 s: SIGN 1" in prompt_of(calls) and "Summarize this video." in prompt_of(calls)
    assert text.startswith("On screen: 0.5 s “SIGN 0”; 2.5 s “SIGN 1”")
    assert [s["step"] for s in decision["steps"]] == ["sample_video", "read_image"]


def test_video_frames_go_to_a_model_that_takes_images() -> None:
    router, calls = build("video", media=("image",))
    route(router, video=b"mp4")
    assert [m for m, _ in calls] == ["video_frames", LLM] and calls[1][1]["image"].size == 4


def test_avatar_replies_then_speaks_with_visemes() -> None:
    router, calls = build("avatar")
    decision, text, extras = unpack(route(router, "Hello there", stream=True)[-1])
    assert [m for m, _ in calls] == [LLM, "tts_espeak"]
    assert calls[1][1]["text"][0] == b"An answer."  # the reply is spoken, nothing else
    assert extras == {"audio": b"RIFFwav", "visemes": VISEMES} and decision["degraded"] == []
    assert "Hello there" in prompt_of(calls) and "spoken sentences" in prompt_of(calls)


def test_avatar_keeps_its_reply_when_speech_fails() -> None:
    router, _ = build("avatar", broken=frozenset({"tts_espeak"}))
    decision, text, extras = unpack(route(router, "Hello there")[-1])
    assert text == "An answer." and extras == {} and "no speech" in decision["degraded"][0]


def test_voice_input_is_transcribed_into_the_query() -> None:
    router, calls = build("avatar")
    route(router, audio=b"wav")
    assert [m for m, _ in calls] == ["stt_whisper_base", LLM, "tts_espeak"]
    assert "what time is it" in prompt_of(calls)


def test_a_failing_step_is_a_clear_serving_error() -> None:
    router, _ = build("multimodal", broken=frozenset({"ocr_tesseract"}))
    with pytest.raises(ServingError, match="step model 'ocr_tesseract' failed"):
        route(router, "read it", image=b"png")


def test_corrupt_media_is_the_client_error_the_step_named() -> None:
    router, calls = build("multimodal", bad_input=frozenset({"ocr_tesseract"}))
    with pytest.raises(InputError, match=r"image\[0\]: cannot decode"):
        route(router, "read it", image=b"png")
    assert LLM not in [m for m, _ in calls]  # nothing loaded or run for a request that cannot be served
