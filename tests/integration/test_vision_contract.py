"""The router's requests to the GPU profile's vision model, as the vLLM backend will read them.

A stand-in for qwen2_5_vl_7b_instruct, served by a real tritonserver: our own config.pbtxt of that
model (the vLLM backend's input contract, written out) with a Python model behind it that reads the
inputs the way the vLLM backend does (each `image` element base64 text, decoded and opened as a
picture) and records what it got. The router runs the real GPU profile's registry and chains, with
the vision model's tokenizer replaced by a tiny one made here that carries Qwen2-VL's chat template:
the router renders the prompt through that template, as it would through Qwen's own tokenizer.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from client import RouterClient
from client.samples import text_image, text_video
from launcher import TritonServer
from model_router import REPO_ROOT
from model_router.registry import REGISTRY_FILE

from .conftest import start_server, stop_server

pytestmark = pytest.mark.integration
VLM = "qwen2_5_vl_7b_instruct"
PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"
SHORT = {"max_tokens": 16, "temperature": 0}
# Qwen2-VL's chat template (as its tokenizer_config.json ships it): image parts become PLACEHOLDER.
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
USER_TURN = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
ANSWER_STARTS = "<|im_end|>\n<|im_start|>assistant\n"

STAND_IN = '''
import base64, io, json
import numpy as np
import triton_python_backend_utils as pb_utils
from PIL import Image

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.record = config["parameters"]["record"]["string_value"]
        self.names = [i["name"] for i in config["input"]]

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            try:
                answer = self.read(request)
                out = pb_utils.Tensor("text_output", np.array([answer.encode()], dtype=np.object_))
                sender.send(pb_utils.InferenceResponse([out]), flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
            except Exception as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(repr(exc))),
                            flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def read(self, request):
        got = {}
        for name in self.names:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is not None:
                got[name] = tensor.as_numpy()
        images = []
        for element in got.get("image", []):  # as the vLLM backend reads them
            data = base64.b64decode(element.decode("utf-8"), validate=True)
            with Image.open(io.BytesIO(data)) as picture:
                images.append([picture.format, *picture.convert("RGB").size])
        prompt = got["text_input"][0].decode("utf-8")
        with open(self.record, "a") as f:
            f.write(json.dumps({
                "inputs": {k: [str(v.dtype), list(v.shape)] for k, v in got.items()},
                "prompt": prompt, "images": images,
                "sampling": json.loads(got["sampling_parameters"][0]),
                "stream": bool(got["stream"][0]), "exclude_input_in_output": bool(got["exclude_input_in_output"][0]),
            }) + "\\n")
        if prompt.count(PLACEHOLDER) < len(images):  # vLLM refuses such a prompt
            raise ValueError(f"{len(images)} images, {prompt.count(PLACEHOLDER)} placeholders")
        return f"saw {len(images)} images"
'''


def make_tokenizer(folder: Path) -> Path:
    """A tiny tokenizer with Qwen2-VL's special tokens and chat template, in a folder that
    transformers' AutoTokenizer opens (tokenizer.json + tokenizer_config.json)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    special = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, **{t: i + 1 for i, t in enumerate(special)}}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(special)
    folder.mkdir()
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "eos_token": "<|im_end|>",
        "chat_template": QWEN2_VL_TEMPLATE}))
    return folder


def make_registry(tmp: Path) -> Path:
    """The shipped registry, the vision model's tokenizer the tiny one (a folder, as the registry allows)."""
    raw = yaml.safe_load(REGISTRY_FILE.read_text())
    raw["models"][VLM]["tokenizer"] = str(make_tokenizer(tmp / "qwen2-vl-template"))
    registry = tmp / "registry.yaml"
    registry.write_text(yaml.safe_dump(raw))
    return registry


def make_repository(tmp: Path) -> tuple[Path, Path]:
    """(model repository, record file): the router's models and the stand-in vision model."""
    repo, record = tmp / "models", tmp / "record.jsonl"
    repo.mkdir()
    for name in ("query_classifier", "router", "tmr_metrics", "video_frames"):
        (repo / name).symlink_to(REPO_ROOT / "model_repository" / name, target_is_directory=True)
    config = (REPO_ROOT / "model_repository_gpu" / VLM / "config.pbtxt").read_text()
    assert re.search(r'^backend: "vllm"$', config, re.M)
    (repo / VLM / "1").mkdir(parents=True)
    (repo / VLM / "config.pbtxt").write_text(
        config.replace('backend: "vllm"', 'backend: "python"')
        + f'parameters {{ key: "record" value: {{ string_value: "{record}" }} }}\n')
    (repo / VLM / "1" / "model.py").write_text(STAND_IN)
    return repo, record


@pytest.fixture(scope="module")
def vision(tmp_path_factory) -> Iterator[tuple[TritonServer, Path]]:
    tmp = tmp_path_factory.mktemp("vision")
    repo, record = make_repository(tmp)
    server = start_server(["query_classifier", "router"], model_repository=repo,
                          env={"TMR_PROFILE": "gpu", "TMR_REGISTRY": str(make_registry(tmp))})
    yield server, record
    stop_server(server)


def last_record(record: Path) -> dict:
    return json.loads(record.read_text().splitlines()[-1])


def test_a_picture_reaches_the_vision_model_as_its_image_input(vision) -> None:
    server, record = vision
    picture = text_image("EXIT 12")
    result = RouterClient(server.grpc_url, "grpc").route(
        "What does the sign say?", {"use_case": "multimodal", "sampling_parameters": SHORT}, image=picture)
    assert result.decision["model"] == VLM and result.decision["degraded"] == [] and result.text == "saw 1 images"
    seen = last_record(record)
    assert seen["inputs"]["image"] == ["object", [1]]  # BYTES, dims [-1]: one element an image
    assert seen["inputs"]["text_input"] == ["object", [1]]
    assert seen["images"] == [["PNG", 800, 200]]
    # Through the template: the image part where Qwen's template puts it, in the user's turn.
    assert seen["prompt"] == USER_TURN + PLACEHOLDER + "What does the sign say?" + ANSWER_STARTS
    assert seen["sampling"]["max_tokens"] == 16 and seen["exclude_input_in_output"] is True


def test_a_video_reaches_it_as_frames_with_their_times(vision) -> None:
    server, record = vision
    video = text_video(["WELCOME", "TRAIN AT NINE"], seconds_each=1.0)
    result = RouterClient(server.grpc_url, "grpc").route(
        "Summarize this video.", {"use_case": "video", "sampling_parameters": SHORT, "stream": True}, video=video)
    decision = result.decision
    assert decision["model"] == VLM and decision["degraded"] == []
    assert [s["step"] for s in decision["steps"]] == ["sample_video"]  # no OCR on this path
    seen = last_record(record)
    frames = len(seen["images"])
    assert frames >= 2 and all(i == ["PNG", 800, 200] for i in seen["images"])
    assert seen["inputs"]["image"] == ["object", [frames]] and seen["stream"] is True
    assert seen["prompt"].startswith(USER_TURN + PLACEHOLDER * frames) and seen["prompt"].count(PLACEHOLDER) == frames
    times = re.search(r"frames sampled from the video, in order, taken at ([0-9., s]+)\.", seen["prompt"]).group(1)
    assert len(times.split(", ")) == frames and seen["prompt"].endswith("Summarize this video." + ANSWER_STARTS)
