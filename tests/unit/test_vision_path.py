"""The GPU profile's vision path: pictures and video frames go to Qwen2.5-VL as images, frame times in
the prompt, one image placeholder per image, nothing said degraded; OCR stays the fallback. The prompt
is rendered through a tiny tokenizer carrying Qwen2-VL's chat template (tests/unit/chat_templates.py),
as the router renders it through Qwen's own."""
from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from model_router.contract.router import RouterRequest
from model_router.contract.tensors import strings, texts
from model_router.registry import ModelSpec, Registry, load_registry
from model_router.routing.pipeline import Pipeline
from model_router.routing.targets import Prepared, TextGeneration

from .chat_templates import IMAGE as PLACEHOLDER
from .chat_templates import tiny_tokenizer, user_turn

VLM, LLM = "qwen2_5_vl_7b_instruct", "qwen2_5_7b_instruct"
FRAMES, TIMES = [b"f0", b"f1", b"f2", b"f3"], [0.5, 1.5, 2.5, 3.5]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The shipped registry, the GPU text models' tokenizer the tiny one with Qwen2-VL's template."""
    tokenizer = str(tiny_tokenizer(tmp_path_factory.mktemp("qwen") / "tokenizer"))
    reg = load_registry()
    for name in (VLM, LLM):
        reg.models[name] = reg.models[name].model_copy(update={"tokenizer": tokenizer})
    return reg


def encode(registry: Registry, model: str, text: str = "",
           **attachments: bytes) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """What the router sends `model` of the GPU profile: (tensors, steps run, degraded)."""
    steps: list[str] = []

    def call(spec: ModelSpec, inputs: dict, outputs: list[str], timeout_s: float,
             cancelled: object = None) -> dict[str, np.ndarray]:
        steps.append(spec.name)
        if spec.interface == "frames":
            return {"images": strings(*FRAMES), "times": np.array(TIMES, dtype=np.float32)}
        return {"text_output": strings(*["EXIT 12"] * inputs["image"].size)}  # OCR

    request = RouterRequest.of(text, json.dumps({"stream": True}), attachments)
    prepared = Pipeline(registry, "gpu", call, 10.0).prepare(registry.model(model), request, "video", "en")
    return TextGeneration().for_request(registry.model(model), request, "en", True, prepared)[0], steps, prepared.degraded


def prompt(tensors: dict[str, np.ndarray]) -> str:
    """The user's turn of the rendered prompt."""
    return user_turn(texts(tensors["text_input"])[0])


def images(tensors: dict[str, np.ndarray]) -> list[bytes]:
    return [base64.b64decode(i) for i in tensors["image"]]


def test_the_gpu_profile_sends_pictures_and_video_to_its_vision_model() -> None:
    registry = load_registry()
    assert "image" in registry.model(VLM).media
    assert registry.chain("gpu", "multimodal")[0] == VLM and registry.chain("gpu", "video")[0] == VLM


def test_video_frames_go_as_images_with_their_times_and_no_degradation(registry: Registry) -> None:
    tensors, steps, degraded = encode(registry, VLM, video=b"mp4")
    assert steps == ["video_frames"] and degraded == []  # no OCR on this path
    assert images(tensors) == FRAMES
    text = prompt(tensors)
    assert text.startswith(PLACEHOLDER * 4) and text.count(PLACEHOLDER) == 4
    assert "The 4 images are frames sampled from the video, in order, taken at 0.5 s, 1.5 s, 2.5 s, 3.5 s." in text
    assert text.endswith("Summarize this video.")


def test_the_users_question_follows_the_frame_times(registry: Registry) -> None:
    tensors, _, _ = encode(registry, VLM, "When does the door open?", video=b"mp4")
    assert prompt(tensors).endswith("taken at 0.5 s, 1.5 s, 2.5 s, 3.5 s.\nWhen does the door open?")


def test_a_picture_and_a_video_keep_their_order(registry: Registry) -> None:
    tensors, _, degraded = encode(registry, VLM, "Is this the same room?", image=b"png", video=b"mp4")
    assert images(tensors) == [b"png", *FRAMES] and degraded == []
    assert prompt(tensors).count(PLACEHOLDER) == 5
    assert "Images 2 to 5 are frames sampled from the video" in prompt(tensors)


def test_a_picture_goes_as_one_image_with_one_placeholder(registry: Registry) -> None:
    tensors, steps, degraded = encode(registry, VLM, "What does the sign say?", image=b"png")
    assert steps == [] and degraded == [] and images(tensors) == [b"png"]
    assert prompt(tensors) == PLACEHOLDER + "What does the sign say?"


def test_a_prompt_that_places_its_own_placeholders_is_left_as_it_is() -> None:
    own = f"Compare {PLACEHOLDER} with {PLACEHOLDER}."
    spec = load_registry().model(VLM).model_copy(update={"tokenizer": ""})  # a raw prompt, as a client wrote it
    tensors = TextGeneration().for_request(spec, RouterRequest.of(own, None, {}), "en", False, Prepared(own, [b"a", b"b"]))[0]
    assert texts(tensors["text_input"])[0] == own and tensors["image"].size == 2


def test_text_only_requests_carry_no_image_input(registry: Registry) -> None:
    tensors = TextGeneration().for_request(registry.model(VLM), RouterRequest.of("Hello", None, {}), "en", False, None)[0]
    assert "image" not in tensors and prompt(tensors) == "Hello"


def test_the_text_fallback_reads_frames_with_ocr_and_says_so(registry: Registry) -> None:
    tensors, steps, degraded = encode(registry, LLM, video=b"mp4")
    assert steps == ["video_frames", "ocr_tesseract"] and "image" not in tensors
    assert PLACEHOLDER not in prompt(tensors) and "EXIT 12" in prompt(tensors)
    assert "cannot see video" in degraded[0]
