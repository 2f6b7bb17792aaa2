"""The Kubernetes deployment (deploy/kubernetes), checked offline: every overlay renders, every object
validates (Kubernetes 1.32's kinds strictly, KServe's, KEDA's and the Prometheus operator's against
their pinned upstream CRDs), the pod KServe would build gives each container what it reads, and
image, ports, probes, flags and the autoscaler's arithmetic agree with compose, the images and the
launcher."""
from __future__ import annotations

import copy
import hashlib
import http.server
import importlib.util
import json
import math
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
from model_router.registry import load_registry
from model_router.settings import RouterSettings

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


def load(name: str, path: Path):
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
def rendered(request) -> tuple[str, dict[str, dict]]:
    """(overlay, {kind: the one object of that kind})."""
    docs = render(KUBE / "overlays" / request.param)
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return request.param, by_kind


def container(objs: dict[str, dict], name: str = KSERVE_CONTAINER) -> dict:
    (c,) = [c for c in objs["ServingRuntime"]["spec"]["containers"] if c["name"] == name]
    return c


def compose_args() -> list[str]:
    """The compose command's flags, its ${TMR_ADMIN_KEY} written as Kubernetes writes it."""
    return [a.replace("${TMR_ADMIN_KEY}", "$(TMR_ADMIN_KEY)") for a in COMPOSE["command"][1:]]


# -- KServe's pod, as its controller and storage webhook build it --------------------------------------
def kserve_pod(objs: dict[str, dict]) -> dict[str, dict]:
    """{container name: container} of the predictor pod. KServe (v0.20.0, MergeServingRuntimeAndInference-
    ServiceSpecs, storage_initializer_injector) merges the InferenceService's model spec (env, args,
    resources) and a storageUri's mount at /mnt/models into kserve-container only; every other runtime
    container goes into the pod as written."""
    model = objs["InferenceService"]["spec"]["predictor"]["model"]
    pod = {}
    for c in objs["ServingRuntime"]["spec"]["containers"]:
        c = copy.deepcopy(c)
        if c["name"] == KSERVE_CONTAINER:
            c["env"] = c.get("env", []) + model.get("env", [])
            c["args"] = c.get("args", []) + model.get("args", [])
            if "storageUri" in model:
                c.setdefault("volumeMounts", []).append({"name": "kserve-pvc-source", "mountPath": KSERVE_MODEL_MOUNT})
        pod[c["name"]] = c
    return pod


def unmet_needs(pod: dict[str, dict], profile: str) -> list[str]:
    """What a container reads that the pod does not give it: the profile, where the weights are, and
    the volumes those paths are on."""
    missing = []
    for name, c in sorted(pod.items()):
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if env.get("TMR_PROFILE") != profile:
            missing.append(f"{name}: TMR_PROFILE={env.get('TMR_PROFILE')!r}, wanted {profile!r}")
        if not env.get("TMR_MODELS"):
            missing.append(f"{name}: no TMR_MODELS")
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        for var, value in sorted(env.items()):
            if value and value.startswith("/mnt/") and not any(value.startswith(m + "/") for m in mounts):
                missing.append(f"{name}: {var}={value} is on no volume mounted in it")
    return missing


def test_every_container_gets_what_it_reads_from_the_runtime_itself(rendered) -> None:
    overlay, objs = rendered
    assert unmet_needs(kserve_pod(objs), overlay) == []
    assert set(kserve_pod(objs)) == {KSERVE_CONTAINER, "openai-front"}


SHARED = ("TMR_PROFILE", "TMR_MODELS", "HF_HOME")


def test_a_sidecar_that_relies_on_the_inference_service_is_caught() -> None:
    objs = {d["kind"]: d for d in render(KUBE / "overlays" / "gpu")}
    model = objs["InferenceService"]["spec"]["predictor"]["model"]
    runtime = objs["ServingRuntime"]["spec"]
    # the weights as the InferenceService's storageUri, not a volume of the runtime
    model["storageUri"] = "pvc://tmr-models"
    for c in runtime["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts", []) if m["name"] != "models"]
    assert unmet_needs(kserve_pod(objs), "gpu") == [
        "openai-front: HF_HOME=/mnt/models/huggingface is on no volume mounted in it",
        "openai-front: TMR_MODELS=/mnt/models/weights is on no volume mounted in it",
    ]
    # and the profile and paths as the InferenceService's env
    model["env"] = [e for e in runtime["containers"][0]["env"] if e["name"] in SHARED]
    for c in runtime["containers"]:
        c["env"] = [e for e in c["env"] if e["name"] not in SHARED]
    assert unmet_needs(kserve_pod(objs), "gpu") == ["openai-front: TMR_PROFILE=None, wanted 'gpu'",
                                                    "openai-front: no TMR_MODELS"]


# -- rendering and schemas -------------------------------------------------------------------------
def test_every_object_validates_strictly(rendered) -> None:
    overlay, objs = rendered
    kinds = {"Namespace", "Service", "ServingRuntime", "InferenceService", "ScaledObject", "PodMonitor"}
    assert set(objs) == (kinds | {"PersistentVolumeClaim", "Job"} if overlay == "gpu" else kinds)
    assert validate.KUBERNETES == "1.32.0"
    assert [p for obj in objs.values() for p in validate.problems(obj)] == []
    for kind, obj in objs.items():  # all in one namespace, all labelled as ours
        assert obj["metadata"].get("namespace") == ("tmr" if kind != "Namespace" else None), kind
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "triton-model-router", kind


def test_strict_validation_refuses_misspelt_fields(rendered) -> None:
    _, objs = rendered
    so = copy.deepcopy(objs["ScaledObject"])
    so["spec"]["maxReplicas"] = 3
    assert validate.problems(so) == ["ScaledObject tmr-router: spec: Additional properties are not allowed "
                                     "('maxReplicas' was unexpected)"]
    runtime = copy.deepcopy(objs["ServingRuntime"])
    runtime["spec"]["containers"][1]["envv"] = []
    assert "'envv' was unexpected" in validate.problems(runtime)[0]
    service = copy.deepcopy(objs["Service"])
    service["spec"]["portz"] = []
    assert "'portz' was unexpected" in validate.problems(service)[0]


def test_the_schemas_are_the_pinned_upstream_files() -> None:
    for project in PINS.values():
        assert re.fullmatch(r"[0-9a-f]{40}", project["commit"]) and project["version"].startswith("v")
        for name, pin in project["files"].items():
            digest = hashlib.sha256((KUBE / "schemas" / name).read_bytes()).hexdigest()
            assert digest == pin["sha256"], f"{name} differs from {project['repository']} {project['version']}"
    assert sorted(p.name for p in (KUBE / "schemas").iterdir()) == sorted(
        ["pins.yaml", *(n for p in PINS.values() for n in p["files"])])


def test_the_kserve_version_is_stated_and_installs_standard_mode() -> None:
    version = PINS["kserve"]["version"]
    assert tuple(map(int, version[1:].split("."))) >= (0, 16)  # deploymentMode: Standard
    # README installs the KServe whose CRDs we validate against, in Standard mode
    installs = re.findall(r"^helm install (kserve-\S+) oci://ghcr.io/kserve/charts/\1 --version (v[\d.]+) (.*)$", README, re.M)
    assert {(name, v) for name, v, _ in installs} == {("kserve-crd", version), ("kserve-resources", version)}
    assert "--set kserve.controller.deploymentMode=Standard" in dict((n, rest) for n, _, rest in installs)["kserve-resources"]
    keda = re.search(r"^helm install keda kedacore/keda --version ([\d.]+) ", README, re.M)[1]
    assert f"v{keda}" == PINS["keda"]["version"]


# -- agreement with docker-compose.yml, the images and the launcher --------------------------------
def test_image_ports_and_shared_memory_agree_with_compose(rendered) -> None:
    overlay, objs = rendered
    c = container(objs)
    service = COMPOSE if overlay == "gpu" else SERVICES["triton-cpu"]
    assert c["image"] == service["image"] == container(objs, "openai-front")["image"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert {f"{p}:{p}" for p in ports.values()} <= set(service["ports"])
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


def in_image(overlay: str, path: str) -> bool:
    """Whether the overlay's image holds `path`: the GPU image copies folders (deploy/Dockerfile), the
    CPU image the whole repository into /opt/tmr (deploy/Dockerfile.cpu)."""
    if overlay == "gpu":
        copied = {dst: src for src, dst in re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, re.M)}
        return path in copied and (REPO_ROOT / copied[path]).exists()
    assert re.search(r"^WORKDIR /opt/tmr$", CPU_DOCKERFILE, re.M) and re.search(r"^COPY \. \.$", CPU_DOCKERFILE, re.M)
    return path.startswith("/opt/tmr/") and (REPO_ROOT / path.removeprefix("/opt/tmr/")).exists()


def test_model_repositories_and_probe_script_are_in_the_image(rendered) -> None:
    overlay, objs = rendered
    c = container(objs)
    repos = [a.partition("=")[2] for a in c["args"] if a.startswith("--model-repository=")]
    assert repos and all(in_image(overlay, r) for r in repos)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["exec"]["command"][0] == "python3" and in_image(overlay, c[probe]["exec"]["command"][1])


def test_probes_ask_triton_and_the_router_within_their_timeout(rendered) -> None:
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
    env = {e["name"] for e in c["env"]}
    assert "TMR_HEALTH_TIMEOUT_S" not in env  # the script's default budget, below every timeout:
    default_budget = float(re.search(r'"TMR_HEALTH_TIMEOUT_S", "([\d.]+)"', Path(healthcheck.__file__).read_text())[1])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert default_budget < c[probe]["timeoutSeconds"], probe


def test_admin_key_comes_from_a_secret(rendered) -> None:
    _, objs = rendered
    ref = {e["name"]: e for e in container(objs)["env"]}["TMR_ADMIN_KEY"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "tmr-admin-key", "key": "admin-key"}
    assert "Secret" not in objs  # made by the operator (README), never committed


def test_inference_service_uses_the_runtime(rendered) -> None:
    _, objs = rendered
    isvc, runtime = objs["InferenceService"], objs["ServingRuntime"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert "storageUri" not in model and "env" not in model  # both containers get theirs from the runtime
    annotations = isvc["metadata"]["annotations"]
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "external"  # KEDA scales, not KServe
    exit_timeout = int(next(a for a in container(objs)["args"] if a.startswith("--exit-timeout-secs=")).split("=")[1])
    assert isvc["spec"]["predictor"]["terminationGracePeriodSeconds"] > exit_timeout


def test_profile_and_resources(rendered) -> None:
    overlay, objs = rendered
    resources = objs["InferenceService"]["spec"]["predictor"]["model"]["resources"]
    budget_mb = load_registry().profile(overlay).memory_budget_mb
    limit = resources["limits"]["memory"]
    assert limit.endswith("Gi") and int(limit[:-2]) * 1024 > budget_mb  # the router's budget fits the pod
    gpus = {r.get("nvidia.com/gpu") for r in resources.values()}
    assert gpus == ({"1"} if overlay == "gpu" else {None})
    if overlay == "gpu":
        assert COMPOSE["environment"]["TMR_PROFILE"] == "gpu"


# -- weights ---------------------------------------------------------------------------------------
def gpu_hub_repositories() -> set[str]:
    """The Hugging Face repositories the GPU model repository loads."""
    repos = set()
    for folder in (REPO_ROOT / "model_repository_gpu").iterdir():
        engine = folder / "1" / "model.json"
        if engine.exists():
            repos.add(json.loads(engine.read_text())["model"])
        repos.update(re.findall(r'key: "model_path" value: \{ string_value: "([^"]+)" \}', (folder / "config.pbtxt").read_text()))
    return repos


def test_the_cpu_profile_serves_the_weights_its_image_prepared(rendered) -> None:
    overlay, objs = rendered
    if overlay != "cpu":
        pytest.skip("the GPU overlay has a models volume")
    env = {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}
    assert re.search(rf"^ENV .*\bTMR_MODELS={re.escape(env['TMR_MODELS'])}\b", CPU_DOCKERFILE, re.M)
    assert env["TMR_MODELS"] == "/opt/tmr/.cache/models"  # setup.sh's default, inside the image
    assert "bash scripts/setup.sh" in CPU_DOCKERFILE


def test_the_gpu_models_volume_binds_and_the_job_fills_what_the_pods_read(rendered) -> None:
    overlay, objs = rendered
    if overlay != "gpu":
        pytest.skip("the CPU image carries its weights")
    pvc, job = objs["PersistentVolumeClaim"], objs["Job"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and "storageClassName" not in pvc["spec"]  # the default class
    (fill,) = job["spec"]["template"]["spec"]["containers"]
    assert fill["image"] == SERVICES["triton-cpu"]["image"]  # the image with prepare_models.py and its wheels
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


# -- metrics and autoscaling -----------------------------------------------------------------------
def test_the_pod_monitor_carries_the_kube_prometheus_stack_label(rendered) -> None:
    _, objs = rendered
    release = objs["PodMonitor"]["metadata"]["labels"]["release"]
    assert re.search(rf"^helm install {release} prometheus-community/kube-prometheus-stack\b", README, re.M)
    assert f"http://prometheus-operated.monitoring.svc:9090" in json.dumps(objs["ScaledObject"])
    assert re.search(rf"^helm install {release} \S+ .*--namespace monitoring\b", README, re.M)


# README, "Pods for N users": users -> pods at each overlay's `served` threshold.
README_PODS = {"cpu": {20: 5, 100: 22}, "gpu": {100: 6, 1000: 54}}


def hpa_replicas(value: float, threshold: str) -> int:
    """The HPA's replicas for an external metric with an AverageValue target (KEDA's metricType)."""
    return math.ceil(value / float(threshold))


def test_autoscaler_arithmetic(rendered) -> None:
    overlay, objs = rendered
    triggers = {t["name"]: t for t in objs["ScaledObject"]["spec"]["triggers"]}
    assert {t["metricType"] for t in triggers.values()} == {"AverageValue"}
    threshold = {name: t["metadata"]["threshold"] for name, t in triggers.items()}
    if overlay == "cpu":  # the examples written in base/scaledobject.yaml
        assert hpa_replicas(6, threshold["served"]) == 3
        assert hpa_replicas(20, threshold["busy"]) == 4
    else:
        check_gpu_thresholds(objs, threshold)
    # README's pods for N users: a request every 2.35 s a user (1.1 s of answer, 1.25 s between)
    for users, pods in README_PODS[overlay].items():
        assert hpa_replicas(users / 2.35, threshold["served"]) == pods, f"{users} users on {overlay}"
    # rejected: the replicas there are (one inflight series each) plus the rejections a second
    query = triggers["rejected"]["metadata"]["query"]
    count, _, rejections = query.partition(" + ")
    assert re.fullmatch(r"count\(tmr_requests_inflight\{[^}]*\}\)", count)
    assert re.fullmatch(r"\(sum\(rate\(tmr_rejected_total\{[^}]*\}\[1m\]\)\) > 0\)", rejections)
    assert threshold["rejected"] == "1"
    assert hpa_replicas(2 + 3, threshold["rejected"]) == 2 + 3  # 2 replicas rejecting 3/s -> 3 more
    assert hpa_replicas(0, threshold["rejected"]) == 0  # no sample when nothing is rejected: holds nothing up


def router_settings(objs: dict[str, dict]) -> RouterSettings:
    """The router's settings in this overlay's pod: its config.pbtxt, under the container's TMR_ env."""
    config = (REPO_ROOT / "model_repository" / "router" / "config.pbtxt").read_text()
    params = re.findall(r'key: "(\w+)" value: \{ string_value: "([^"]*)" \}', config)
    env = {e["name"]: e.get("value", "") for e in container(objs).get("env", [])}
    return RouterSettings.read({"parameters": {k: {"string_value": v} for k, v in params}}, env)


def check_gpu_thresholds(objs: dict[str, dict], threshold: dict[str, str]) -> None:
    """Not measured on a GPU, so derived (the overlay's comments): a replica runs `workers` requests at
    once; at half load, with the registry's latency for the GPU agent chain's first model, it answers
    workers / 2 / latency a second (served), and keeps workers / 2 in flight (busy)."""
    registry, workers = load_registry(), router_settings(objs).workers
    primary = registry.models[registry.profile("gpu").chains["agent"][0]]
    assert float(threshold["busy"]) == workers / 2
    assert float(threshold["served"]) == math.floor(workers / 2 / (primary.latency_ms / 1000))


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
        for metric in re.findall(r"\b(tmr_[a-z_]+)\{", query):
            assert f'"{metric}"' in exported, f"{metric} is not a metric the router exports"
        assert query.count(f'namespace="{namespace}"') == query.count(f'pod=~"{deployment}-.*"') == query.count("{")
        assert float(trigger["metadata"]["threshold"]) > 0


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
