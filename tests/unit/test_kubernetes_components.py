"""The Kubernetes deployment's parts beside the router's pod, checked offline: where each profile's
weights come from (the CPU image, the GPU models volume and the Job that fills it, a shared class one
component away), the OpenAI front's sidecar and Service, the optional Redis component, the validator
and its pin, and what the probe script (deploy/healthcheck.py) answers a fake Triton."""
from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import kubernetes_validate
import pytest
import yaml

from model_router import REPO_ROOT
from model_router.triton.control import repository_config

from .kube import (CPU_DOCKERFILE, KUBE, OVERLAYS, READY_PATHS, SERVICES, STARTUP_PATHS, container, healthcheck,
                   load, render, validate)
from .kube import rendered  # noqa: F401 (a fixture)


# -- weights ---------------------------------------------------------------------------------------
def gpu_hub_repositories() -> set[str]:
    """The Hugging Face repositories the GPU model repository loads."""
    repos = set()
    for folder in (REPO_ROOT / "model_repository_gpu").iterdir():
        engine = folder / "1" / "model.json"
        if engine.exists():
            repos.add(json.loads(engine.read_text())["model"])
        parameters = json.loads(repository_config(folder)).get("parameters", {})
        if "model_path" in parameters:
            repos.add(parameters["model_path"]["string_value"])
    return repos


def test_the_cpu_profile_serves_the_weights_its_image_prepared(rendered) -> None:
    overlay, objs = rendered
    if overlay != "cpu":
        pytest.skip("the GPU overlay has a models volume")
    env = {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}
    assert re.search(rf"^ENV .*\bTMR_MODELS={re.escape(env['TMR_MODELS'])}\b", CPU_DOCKERFILE, re.M)
    assert env["TMR_MODELS"] == "/opt/tmr/.cache/models"  # setup.sh's default, inside the image
    assert "bash scripts/setup.sh" in CPU_DOCKERFILE


def test_the_cpu_pod_serves_the_llamacpp_models_from_its_image(rendered, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Qwen2.5-Coder models on the llama.cpp backend: their configs in the repository the pod
    serves, the backend's code in the image, their GGUF files where the image prepared them (as the
    backend reads model_path under the container's TMR_MODELS), their threads within the pod's cores."""
    from transformers_backend.settings import BackendSettings

    overlay, objs = rendered
    if overlay != "cpu":
        pytest.skip("the GPU profile serves its text with vLLM")
    c = container(objs)
    repositories = [a.partition("=")[2] for a in c["args"] if a.startswith("--model-repository=")]
    assert repositories == ["/opt/tmr/model_repository"]
    assert re.search(r"^COPY \. \.$", CPU_DOCKERFILE, re.M) and re.search(r"^WORKDIR /opt/tmr$", CPU_DOCKERFILE, re.M)
    repository = REPO_ROOT / repositories[0].removeprefix("/opt/tmr/")
    configs = {f.name: json.loads(repository_config(f)) for f in repository.iterdir() if (f / "config.pbtxt").exists()}
    llamacpp = {name: config for name, config in configs.items() if config["backend"] == "llamacpp"}
    assert {"qwen2_5_coder_1_5b_instruct", "qwen2_5_coder_0_5b_instruct"} <= set(llamacpp)
    assert (REPO_ROOT / "python_backends" / "llamacpp" / "model.py").is_file()  # linked by prepare_backends

    prepare = load("prepare_models", REPO_ROOT / "scripts" / "prepare_models.py")
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    monkeypatch.setenv("TMR_MODELS", env["TMR_MODELS"])
    prepared = {f"{env['TMR_MODELS']}/{name}/{gguf.file}" for name, gguf in prepare.QWEN_GGUF.items()}
    cores = float(objs["InferenceService"]["spec"]["predictor"]["model"]["resources"]["requests"]["cpu"])
    for name, config in llamacpp.items():
        settings = BackendSettings.from_config(config)
        assert settings.model_path in prepared, name
        assert 1 <= settings.threads <= cores, name


def test_the_gpu_models_volume_binds_and_the_job_fills_what_the_pods_read(rendered) -> None:
    overlay, objs = rendered
    if overlay != "gpu":
        pytest.skip("the CPU image carries its weights")
    pvc, job = objs["PersistentVolumeClaim"], objs["Job"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in pvc["spec"]  # the default class
    (fill,) = job["spec"]["template"]["spec"]["containers"]
    assert fill["image"] == SERVICES["triton-cpu"]["image"]  # the image with prepare_models.py
    (volume,) = job["spec"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    script = fill["command"][-1]
    runtime = objs["ServingRuntime"]["spec"]
    (models,) = [v for v in runtime["volumes"] if v.get("persistentVolumeClaim")]
    assert models["persistentVolumeClaim"] == {"claimName": pvc["metadata"]["name"], "readOnly": True}
    job_env = {e["name"]: e["value"] for e in fill["env"]}
    for c in runtime["containers"]:
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert f"scripts/prepare_models.py --dest {env['TMR_MODELS']} " in script
        assert env["HF_HOME"] == job_env["HF_HOME"]
    assert set(script.split("sys.argv[1:]]'")[1].split()) == gpu_hub_repositories()


def test_a_shared_models_class_is_one_component_away(tmp_path: Path) -> None:
    shutil.copytree(KUBE, tmp_path / "kubernetes")
    overlay = tmp_path / "kubernetes" / "overlays" / "gpu"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    # what README's two `kustomize edit` commands write
    kustomization["components"] = ["../../components/shared-models"]
    kustomization["patches"].append({"target": {"kind": "PersistentVolumeClaim", "name": "tmr-models"},
                                     "patch": '[{"op": "replace", "path": "/spec/storageClassName", "value": "nfs"}]'})
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (pvc,) = [d for d in render(overlay) if d["kind"] == "PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"] == "nfs"
    assert validate.problems(pvc) == []


def test_requirements_pin_the_validator() -> None:
    pins = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(rf"^kubernetes-validate=={re.escape(kubernetes_validate.__version__)}\b", pins, re.M)


def test_the_openai_front_is_a_sidecar_with_its_own_service(rendered) -> None:
    overlay, objs = rendered
    sidecar = container(objs, "openai-front")
    front = SERVICES["openai"]
    assert sidecar["command"][:3] == front["command"][:3] == ["python3", "-m", "openai_front"]
    assert "127.0.0.1:8001" in sidecar["command"]  # its own pod's router
    service = objs["Service"]
    assert service["spec"]["selector"] == {"serving.kserve.io/inferenceservice": objs["InferenceService"]["metadata"]["name"]}
    assert service["spec"]["ports"][0]["port"] == 9000 == sidecar["ports"][0]["containerPort"]


def test_validate_script_runs_from_the_command_line() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run([sys.executable, str(KUBE / "validate.py")],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0 and "overlays/gpu: 8 objects, valid" in out.stdout, out.stdout + out.stderr


# -- the response cache's Redis (components/redis) -------------------------------------------------
def with_component(tmp_path: Path, overlay: str, component: str) -> list[dict]:
    """The overlay rendered after README's `kustomize edit add component ../../components/<component>`."""
    shutil.copytree(KUBE, tmp_path / "kubernetes")
    folder = tmp_path / "kubernetes" / "overlays" / overlay
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    kustomization["components"] = [f"../../components/{component}"]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return render(folder)


def memory_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i|[kmg]b)", quantity).groups()
    return int(number) * 1024 ** {"k": 1, "m": 2, "g": 3}[unit[0].lower()]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_optional_redis_is_one_component_away_and_the_router_finds_it(tmp_path: Path, overlay: str) -> None:
    from model_router.cache import parse_cache_url

    docs = with_component(tmp_path, overlay, "redis")
    assert [p for d in docs for p in validate.problems(d)] == []
    for d in docs:  # in our namespace, labelled as ours, like the rest
        assert d["metadata"].get("namespace") == ("tmr" if d["kind"] != "Namespace" else None), d["metadata"]["name"]
        assert d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "triton-model-router"
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "tmr-redis"]
    objs = {d["kind"]: d for d in docs if d["kind"] not in ("Service", "Deployment")}
    env = {e["name"]: e.get("value") for e in container(objs)["env"]}
    url = parse_cache_url(env["TMR_CACHE_URL"])
    assert url.backend == "redis"
    host, port = re.fullmatch(r"redis://([^:/]+):(\d+)/\d+", url.url).groups()
    assert host == service["metadata"]["name"] and int(port) == service["spec"]["ports"][0]["port"]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (redis,) = pod["spec"]["containers"]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in redis["ports"]}
    args = dict(zip(redis["args"][::2], redis["args"][1::2]))
    assert args["--maxmemory-policy"] == "allkeys-lru" and args["--save"] == ""  # a cache: evicts, never persists
    assert memory_bytes(args["--maxmemory"]) < memory_bytes(redis["resources"]["limits"]["memory"])
    assert "TMR_CACHE_URL" not in {e["name"] for e in container(objs, "openai-front").get("env", [])}


def test_without_the_component_each_replica_keeps_its_own_cache(rendered) -> None:
    _, objs = rendered
    assert "TMR_CACHE_URL" not in {e["name"] for e in container(objs)["env"]}  # the router's default: memory
    assert "Deployment" not in objs


# -- the probe script ------------------------------------------------------------------------------
class _Triton(http.server.BaseHTTPRequestHandler):
    ready = {"/v2/health/ready", "/v2/health/live"}
    router_ready = False  # what the router's deep health report says

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(200 if self.path in self.ready else 400)
        self.end_headers()

    def do_POST(self) -> None:  # the router's generate route, asked for its deep health
        asked = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert json.loads(asked["options"]) == {"health": True}
        report = {"ready": self.router_ready, "models": {
            "query_classifier": {"pinned": True, "healthy": self.router_ready, "status": "loaded",
                                 "recovering": "" if self.router_ready else "recovering: its stub died; reloading"}}}
        body = json.dumps({"text_output": "", "routing": json.dumps(report)}).encode()
        self.send_response(200 if self.path == "/v2/models/router/generate" else 404)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_triton() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Triton)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_probe_fails_when_any_path_is_not_ready(fake_triton: str) -> None:
    assert healthcheck.check(["/v2/health/ready", "/v2/health/live"], fake_triton, 2) is None
    assert healthcheck.check(STARTUP_PATHS, fake_triton, 2) == "/v2/models/router/ready: HTTP 400"
    assert healthcheck.check(READY_PATHS, fake_triton, 2) == \
        "router-deep: not ready (query_classifier recovering: its stub died; reloading)"
    assert healthcheck.check(["/v2/health/live", "router-live"], fake_triton, 2) is None  # answers, not ready
    assert healthcheck.check(["router-live"], "http://127.0.0.1:1", 2).startswith("router-live: ")
    _Triton.router_ready = True
    try:
        assert healthcheck.check(READY_PATHS, fake_triton, 2) is None
    finally:
        _Triton.router_ready = False
    assert healthcheck.check(["/v2/health/ready"], "http://127.0.0.1:1", 2).startswith("/v2/health/ready: ")


def test_the_probe_gives_all_its_checks_one_budget(fake_triton: str) -> None:
    """A slow answer fails the probe with its reason, and the checks after it are not asked."""
    assert "timed out" in healthcheck.check(["/slow"], fake_triton, 0.5)
    assert healthcheck.check(["/slow", "/v2/health/ready"], fake_triton, 0.5).startswith("/slow: ")
