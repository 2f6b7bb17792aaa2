"""A model repository and registry for the router's tests: the real models plus one with broken weights."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import yaml

from launcher import DEFAULT_MODELS_DIR, TritonServer
from model_router import REPO_ROOT
from model_router.registry import REGISTRY_FILE

from .conftest import start_server
from .observe import LLM

BROKEN = "broken_llm"
LLM_BF16 = f"{LLM}_bf16"
# Pinned 460 MB (classifier, router, metrics, as declared) + one LLM fits, with room for its measured
# memory (SmolLM2's PSS was 978 MB on one machine against 900 declared: 1400 left it out there);
# two LLMs (900 + 650 declared, 1,700 measured) do not.
ONE_LLM_BUDGET_MB = 1750


def make_repository(tmp: Path, edit: Callable[[dict], None] = lambda raw: None,
                    copies: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Returns (model repository, registry file); `edit` may change the registry (its parsed YAML). The
    models in `copies` are copied rather than linked, for a test to edit in place."""
    repo = tmp / "models"
    repo.mkdir()
    for name in ("query_classifier", "router", "tmr_metrics", LLM, LLM_BF16):
        if name in copies:
            shutil.copytree(REPO_ROOT / "model_repository" / name, repo / name)
        else:
            (repo / name).symlink_to(REPO_ROOT / "model_repository" / name, target_is_directory=True)
    # Weights broken on purpose: the real config and tokenizer, a truncated safetensors file.
    weights = tmp / "broken-weights"
    shutil.copytree(DEFAULT_MODELS_DIR / "smollm2-135m-instruct", weights,
                    ignore=shutil.ignore_patterns("model.safetensors"))
    (weights / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}" + b"\0" * 64)
    (repo / BROKEN / "1").mkdir(parents=True)
    config = (REPO_ROOT / "model_repository" / LLM / "config.pbtxt").read_text()
    (repo / BROKEN / "config.pbtxt").write_text(
        config.replace("${TMR_MODELS}/smollm2-135m-instruct", str(weights)))
    raw = yaml.safe_load(REGISTRY_FILE.read_text())
    raw["models"][BROKEN] = dict(raw["models"][LLM], quality=0.2)
    raw["chains"]["cpu"]["agent"] = [LLM, LLM_BF16, BROKEN]
    edit(raw)
    registry = tmp / "registry.yaml"
    registry.write_text(yaml.safe_dump(raw))
    return repo, registry


def set_parameter(config: Path, key: str, value: str) -> None:
    """Sets a parameter of a config.pbtxt, through Triton's own config schema (its comments are not kept)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    parsed = text_format.Parse(config.read_text(), model_config_pb2.ModelConfig())
    parsed.parameters[key].string_value = value
    config.write_text(text_format.MessageToString(parsed))


def start_router_server(tmp: Path, load: list[str], edit: Callable[[dict], None] = lambda raw: None,
                        copies: tuple[str, ...] = (), **env: str) -> TritonServer:
    """A server on make_repository's models and registry, with the router's settings in `env`. Its log is
    a fresh file of its own (the launcher appends to a file named after the port, which an earlier
    server on the same port may have written)."""
    repo, registry = make_repository(tmp, edit, copies)
    # Eviction tests switch models at will: no minimum residency unless a test asks for one.
    return start_server(load, model_repository=repo, log_file=tmp / "tritonserver.log",
                        env={"TMR_REGISTRY": str(registry), "TMR_MIN_RESIDENCY_S": "0", **env})
