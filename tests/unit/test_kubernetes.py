"""The Kubernetes deployment (deploy/kubernetes), checked offline: every overlay renders, every kind
validates (Kubernetes' schemas for the standard kinds, ours for KServe, KEDA and the Prometheus
operator), and image, ports, probes and flags agree with docker-compose.yml and the launcher."""
from __future__ import annotations

import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import threading
from typing import Iterator

import jsonschema
import kubernetes_validate
import pytest
import yaml

from model_router import REPO_ROOT
from model_router.registry import load_registry

KUBE = REPO_ROOT / "deploy" / "kubernetes"
OVERLAYS = ("cpu", "gpu")
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["triton"]
DOCKERFILE = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
SCHEMAS = yaml.safe_load((KUBE / "schemas" / "custom-kinds.yaml").read_text())
STANDARD_KINDS = {"Namespace", "PersistentVolumeClaim", "Service", "Secret", "ConfigMap", "Service"}
READY_PATHS = ["/v2/health/ready", "router-deep"]  # Triton, and the router's deep health
STARTUP_PATHS = ["/v2/health/ready", "/v2/models/router/ready"]


def render(overlay: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    out = subprocess.run(["kubectl", "kustomize", str(KUBE / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, dict[str, dict]]:
    """(overlay, {kind: the one object of that kind})."""
    docs = render(request.param)
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return request.param, by_kind


def container(objs: dict[str, dict]) -> dict:
    (c,) = [c for c in objs["ServingRuntime"]["spec"]["containers"] if c["name"] == "kserve-container"]
    return c


def compose_args() -> list[str]:
    """The compose command's flags, its ${TMR_ADMIN_KEY} written as Kubernetes writes it."""
    return [a.replace("${TMR_ADMIN_KEY}", "$(TMR_ADMIN_KEY)") for a in COMPOSE["command"][1:]]


def env(objs: dict[str, dict]) -> dict[str, dict]:
    items = container(objs).get("env", []) + objs["InferenceService"]["spec"]["predictor"]["model"].get("env", [])
    return {e["name"]: e for e in items}


# -- rendering and schemas -------------------------------------------------------------------------
def test_every_kind_validates(rendered) -> None:
    _, objs = rendered
    assert set(objs) == {"Namespace", "PersistentVolumeClaim", "Service", "ServingRuntime", "InferenceService",
                         "ScaledObject", "PodMonitor"}
    version = kubernetes_validate.latest_version()
    for kind, obj in objs.items():
        if kind in STANDARD_KINDS:
            kubernetes_validate.validate(obj, version, strict=True)
        else:
            schema = SCHEMAS["kinds"][f"{obj['apiVersion']}/{kind}"]
            jsonschema.validate(obj, {**schema, "$defs": SCHEMAS["$defs"]})


def test_our_schema_catches_a_misspelt_field(rendered) -> None:
    _, objs = rendered
    so = {**objs["ScaledObject"], "spec": {**objs["ScaledObject"]["spec"], "maxReplicas": 3}}
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(so, {**SCHEMAS["kinds"]["keda.sh/v1alpha1/ScaledObject"], "$defs": SCHEMAS["$defs"]})


# -- agreement with docker-compose.yml, the image and the launcher ---------------------------------
def test_image_ports_and_shared_memory_agree_with_compose(rendered) -> None:
    overlay, objs = rendered
    c = container(objs)
    assert c["image"] == COMPOSE["image"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert sorted(f"{p}:{p}" for p in ports.values()) == sorted(COMPOSE["ports"])
    args = dict(a.partition("=")[::2] for a in c["args"])
    assert (args["--http-port"], args["--grpc-port"], args["--metrics-port"]) == ("8000", "8001", "8002")
    assert c["ports"][0]["name"] == "http"  # KServe's Service port 80 goes to the first one
    (pm,) = objs["PodMonitor"]["spec"]["podMetricsEndpoints"]
    assert pm["port"] == "metrics" and pm["path"] == "/metrics"
    (shm,) = [v for v in objs["ServingRuntime"]["spec"]["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
    assert {"name": shm["name"], "mountPath": "/dev/shm"} in c["volumeMounts"]
    if overlay == "gpu":  # compose's shm_size, in Kubernetes units
        assert shm["emptyDir"]["sizeLimit"] == COMPOSE["shm_size"].replace("gb", "Gi")


def test_flags_agree_with_compose(rendered) -> None:
    overlay, objs = rendered
    c = container(objs)
    assert c["command"] == COMPOSE["command"][:1] == ["tritonserver"]
    if overlay == "gpu":  # the same server as docker compose runs
        assert sorted(c["args"]) == sorted(compose_args())
    else:  # the CPU default's repository alone, and no GPU metrics (as the launcher)
        gpu_only = {"--model-repository=/opt/tmr/model_repository_gpu", "--allow-gpu-metrics=true"}
        assert sorted(c["args"]) == sorted([a for a in compose_args() if a not in gpu_only]
                                           + ["--allow-gpu-metrics=false"])


def test_policy_flags_agree_with_the_launcher(rendered) -> None:
    from launcher import TritonServer

    _, objs = rendered
    launched = TritonServer(admin_key="KEY").command()
    args = container(objs)["args"]
    # Ports, paths and the shared-memory prefix of the launcher's side-by-side servers differ by design.
    for flag in launched:
        name = flag.partition("=")[0]
        if name in ("--model-control-mode", "--allow-metrics", "--disable-auto-complete-config",
                    "--exit-timeout-secs") or "shm-default-byte-size" in flag:
            assert flag in args, flag
        if name in ("--http-restricted-api", "--grpc-restricted-protocol"):
            assert flag.replace("KEY", "$(TMR_ADMIN_KEY)") in args, flag


def test_model_repositories_and_probe_script_are_in_the_image(rendered) -> None:
    _, objs = rendered
    copied = dict(re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, re.M))
    c = container(objs)
    repos = [a.partition("=")[2] for a in c["args"] if a.startswith("--model-repository=")]
    assert repos and set(repos) <= {copied["model_repository"], copied["model_repository_gpu"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][:2] == ["python3", copied["deploy/healthcheck.py"]]


def test_probes_ask_triton_and_the_router(rendered) -> None:
    _, objs = rendered
    c = container(objs)
    assert c["readinessProbe"]["exec"]["command"][2:] == READY_PATHS == COMPOSE["healthcheck"]["test"][3:]
    assert c["startupProbe"]["exec"]["command"][2:] == STARTUP_PATHS
    assert c["livenessProbe"]["exec"]["command"][2:] == ["/v2/health/live", "router-live"]
    # Probes on /v2/health/ready would fail during every on-demand load under strict readiness.
    assert "--strict-readiness=false" in c["args"]
    live, start = c["livenessProbe"], c["startupProbe"]
    assert start["periodSeconds"] * start["failureThreshold"] >= 300  # time to start
    assert live["periodSeconds"] * live["failureThreshold"] >= 60


def test_admin_key_comes_from_a_secret(rendered) -> None:
    _, objs = rendered
    ref = env(objs)["TMR_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tmr-admin-key", "key": "admin-key"}
    assert "Secret" not in objs  # made by the operator (kustomization.yaml), never committed


def test_inference_service_uses_the_runtime_and_the_models_volume(rendered) -> None:
    _, objs = rendered
    isvc, runtime = objs["InferenceService"], objs["ServingRuntime"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model["storageUri"] == f"pvc://{objs['PersistentVolumeClaim']['metadata']['name']}"
    variables = env(objs)
    for name in ("TMR_MODELS", "HF_HOME"):
        assert variables[name]["value"].startswith("/mnt/models/")  # where KServe mounts storageUri
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "external"  # KEDA scales, not KServe
    exit_timeout = int(next(a for a in container(objs)["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
    assert isvc["spec"]["predictor"]["terminationGracePeriodSeconds"] > exit_timeout


def test_profile_and_resources(rendered) -> None:
    overlay, objs = rendered
    assert env(objs)["TMR_PROFILE"]["value"] == overlay
    resources = objs["InferenceService"]["spec"]["predictor"]["model"]["resources"]
    budget_mb = load_registry().profile(overlay).memory_budget_mb
    limit = resources["limits"]["memory"]
    assert limit.endswith("Gi") and int(limit[:-2]) * 1024 > budget_mb  # the router's budget fits the pod
    gpus = {r.get("nvidia.com/gpu") for r in resources.values()}
    assert gpus == ({"1"} if overlay == "gpu" else {None})
    if overlay == "gpu":
        assert env(objs)["TMR_PROFILE"]["value"] == COMPOSE["environment"]["TMR_PROFILE"]


def test_autoscaler_targets_the_router_deployment_on_our_metrics(rendered) -> None:
    _, objs = rendered
    so, isvc = objs["ScaledObject"]["spec"], objs["InferenceService"]
    deployment = f"{isvc['metadata']['name']}-predictor"  # KServe's name for the predictor
    assert so["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
    predictor = isvc["spec"]["predictor"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (predictor["minReplicas"], predictor["maxReplicas"])
    exported = (REPO_ROOT / "model_router" / "triton" / "metrics.py").read_text()
    namespace = isvc["metadata"]["namespace"]
    for trigger in so["triggers"]:
        query = trigger["metadata"]["query"]
        (metric,) = re.findall(r"\b(tmr_[a-z_]+)\{", query)
        assert f'"{metric}"' in exported, f"{metric} is not a metric the router exports"
        assert f'namespace="{namespace}"' in query and f'pod=~"{deployment}-.*"' in query
        assert float(trigger["metadata"]["threshold"]) > 0


# -- the probe script ------------------------------------------------------------------------------
class _Triton(http.server.BaseHTTPRequestHandler):
    ready = {"/v2/health/ready", "/v2/health/live"}
    router_ready = False  # what the router's deep health report says

    def do_GET(self) -> None:
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
    server = http.server.HTTPServer(("127.0.0.1", 0), _Triton)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_probe_fails_when_any_path_is_not_ready(fake_triton: str) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", REPO_ROOT / "deploy" / "healthcheck.py")
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
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


def test_requirements_pin_the_validator() -> None:
    pins = (REPO_ROOT / "requirements.txt").read_text()
    assert re.search(rf"^kubernetes-validate=={re.escape(kubernetes_validate.__version__)}\b", pins, re.M)


def test_the_openai_front_is_a_sidecar_with_its_own_service(rendered) -> None:
    _, objs = rendered
    sidecar = next(c for c in objs["ServingRuntime"]["spec"]["containers"] if c["name"] == "openai-front")
    front = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]["openai"]
    assert sidecar["image"].split(":")[0] == container(objs)["image"].split(":")[0]
    assert sidecar["command"][:3] == front["command"][:3] == ["python3", "-m", "openai_front"]
    assert "127.0.0.1:8001" in sidecar["command"]  # its own pod's router
    service = objs["Service"]
    assert service["spec"]["selector"] == {"serving.kserve.io/inferenceservice": objs["InferenceService"]["metadata"]["name"]}
    assert service["spec"]["ports"][0]["port"] == 9000 == sidecar["ports"][0]["containerPort"]
