"""vLLM's gpu_memory_utilization derived at load time (serving/gpu_share.py) and the model-control
file override that carries it (triton/control.py): the same model repository on 40, 80 and 141 GB."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from model_router import REPO_ROOT
from model_router.registry import load_registry
from model_router.serving.gpu_share import gpu_memory_utilization
from model_router.triton.control import TritonModelControl, repository_config, vllm_load_files, vllm_override

CARDS_MB = {"A100 40GB": 40960, "L40S 48GB": 46068, "H100 80GB": 81559, "H200 141GB": 143771}
VLLM = {m.name: m for m in load_registry().models.values() if m.backend == "vllm"}


@pytest.mark.parametrize("card", CARDS_MB)
@pytest.mark.parametrize("name", sorted(VLLM))
def test_every_vllm_model_gets_its_registry_memory_on_every_card(name: str, card: str) -> None:
    total = CARDS_MB[card]
    need = VLLM[name].gpu_memory_mb
    share = gpu_memory_utilization(name, need, total)
    assert 0 < share <= 1
    assert share * total <= need < (share + 0.001) * total  # never more than granted, at most 1/1000 less


def test_a_model_larger_than_the_card_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"gpu_memory_mb=26000 for model 'qwen2_5_vl_7b_instruct'.*24000 MB"):
        gpu_memory_utilization("qwen2_5_vl_7b_instruct", 26000, 24000)
    with pytest.raises(ValueError, match="gpu_total_mb=0"):
        gpu_memory_utilization("phi_2", 8000, 0)
    with pytest.raises(ValueError, match="gpu_memory_mb=0"):
        gpu_memory_utilization("phi_2", 0, 81559)


@pytest.mark.parametrize("name", sorted(VLLM))
def test_the_override_changes_only_the_share(name: str) -> None:
    folder = REPO_ROOT / "model_repository_gpu" / name
    files = vllm_load_files(folder, CARDS_MB["A100 40GB"], VLLM[name].gpu_memory_mb)
    assert list(files) == ["file:1/model.json"]
    written, committed = json.loads(files["file:1/model.json"]), json.loads((folder / "1" / "model.json").read_text())
    assert written.pop("gpu_memory_utilization") == gpu_memory_utilization(name, VLLM[name].gpu_memory_mb, 40960)
    committed.pop("gpu_memory_utilization", None)
    assert written == committed


@pytest.mark.parametrize("name", sorted(VLLM))
def test_the_override_config_is_the_repository_config(name: str) -> None:
    folder = REPO_ROOT / "model_repository_gpu" / name
    sent = json_format.Parse(repository_config(folder), model_config_pb2.ModelConfig())
    on_disk = text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    on_disk.name = name
    assert sent == on_disk and sent.backend == "vllm"


class _Recorder(TritonModelControl):
    """Records what would go over the wire: tritonclient's own request body."""

    def _call(self, method, *args, **kwargs):
        self.calls.append((method, args, kwargs))
        return []


def test_load_sends_config_and_files_and_refuses_files_alone() -> None:
    control = _Recorder("127.0.0.1:1")
    control.calls = []
    folder = REPO_ROOT / "model_repository_gpu" / "phi_2"
    config, files = vllm_override(folder, 81559, 8000)
    control.load("phi_2", config=config, files=files)
    (_, args, kwargs), = control.calls
    assert args == ("phi_2",) and kwargs == {"config": config, "files": files}
    with pytest.raises(ValueError, match=r"files=\['file:1/model.json'\] for model 'phi_2'"):
        control.load("phi_2", files=files)
    assert json.loads(files["file:1/model.json"])["gpu_memory_utilization"] == 0.098  # 8,000 of 81,559 MB
