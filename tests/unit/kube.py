"""The Kubernetes deployment's files as the tests read them: the overlays rendered with `kubectl
kustomize` (a test is skipped without kubectl), compose, the images' Dockerfiles, the pinned schemas
and README; deploy/kubernetes/validate.py and deploy/healthcheck.py loaded from the checkout."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from model_router import REPO_ROOT

KUBE = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("cpu", "gpu")
SERVICES = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
COMPOSE = SERVICES["triton"]
DOCKERFILE = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
CPU_DOCKERFILE = (REPO_ROOT / "deploy" / "Dockerfile.cpu").read_text()
PINS = yaml.safe_load((KUBE / "schemas" / "pins.yaml").read_text())
README = (REPO_ROOT / "README.md").read_text()
READY_PATHS = ["/v2/health/ready", "router-deep"]  # Triton, and the router's deep health
STARTUP_PATHS = ["/v2/health/ready", "/v2/models/router/ready"]
# KServe's name for the container it merges the InferenceService's model spec into (v0.20.0,
# pkg/constants: InferenceServiceContainerName), and where it mounts a storageUri.
KSERVE_CONTAINER, KSERVE_MODEL_MOUNT = "kserve-container", "/mnt/models"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


validate = load("kube_validate", KUBE / "validate.py")
healthcheck = load("healthcheck", REPO_ROOT / "deploy" / "healthcheck.py")


def render(overlay: Path) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    return validate.render(overlay)


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, dict[str, dict]]:
    """(overlay, {kind: the one object of that kind})."""
    docs = render(KUBE / "overlays" / request.param)
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return request.param, by_kind


def container(objs: dict[str, dict], name: str = KSERVE_CONTAINER) -> dict:
    (c,) = [c for c in objs["ServingRuntime"]["spec"]["containers"] if c["name"] == name]
    return c
