"""The Kubernetes deployment's parts beside the router's pod, checked offline: where each profile's
weights come from (the CPU image, the GPU models volume and the Job that fills it, a shared class one
component away), the OpenAI front's sidecar and Service, who may connect to the pods (NetworkPolicy), the
optional Redis component, the validator and its pin, and what the probe script (deploy/healthcheck.py) answers a fake Triton."""
from __future__ import annotations

import copy
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

from .kube import (CPU_DOCKERFILE, KUBE, OVERLAYS, README, READY_PATHS, SERVICES, STARTUP_PATHS, container,
                   healthcheck, load, render, validate)
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
    assert out.returncode == 0 and "overlays/gpu: 9 objects, valid" in out.stdout, out.stdout + out.stderr


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


# -- who may connect (base/networkpolicy.yaml, components/redis/networkpolicy.yaml) ---------------------
OUTSIDE = None  # a client outside the cluster: no pod, no namespace


def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A label selector's matchLabels and matchExpressions on `labels` (an empty selector selects all)."""
    ops = {"In": lambda key, values: labels.get(key) in values,
           "NotIn": lambda key, values: labels.get(key) not in values,
           "Exists": lambda key, values: key in labels, "DoesNotExist": lambda key, values: key not in labels}
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and \
        all(ops[e["operator"]](e["key"], e.get("values", [])) for e in selector.get("matchExpressions", []))


def admits(policy: dict, port: int, source: tuple[str, dict[str, str], dict[str, str]] | None) -> bool:
    """Whether `policy` lets a TCP connection to `port` in from `source` ((namespace, its labels, the pod's
    labels), or OUTSIDE), read as the API defines it: any rule admits; a rule without `from` admits every
    source, one without `ports` every port; a peer with a podSelector alone means pods of the policy's own
    namespace, one with both selectors pods matching both. ipBlock peers and named ports are not read here
    (the tests' policies have none): they fail the test rather than being misread."""
    assert policy["spec"]["policyTypes"] == ["Ingress"]

    def peer_admits(peer: dict) -> bool:
        assert set(peer) <= {"podSelector", "namespaceSelector"}, peer
        if source is OUTSIDE:
            return False
        namespace, namespace_labels, pod_labels = source
        namespace_labels = {**namespace_labels, "kubernetes.io/metadata.name": namespace}
        if "namespaceSelector" in peer:
            in_namespace = selects(peer["namespaceSelector"], namespace_labels)
        else:
            in_namespace = namespace == policy["metadata"]["namespace"]
        return in_namespace and selects(peer.get("podSelector", {}), pod_labels)

    def port_admits(rule_port: dict) -> bool:
        assert isinstance(rule_port["port"], int) and rule_port.get("protocol", "TCP") == "TCP", rule_port
        return rule_port["port"] <= port <= rule_port.get("endPort", rule_port["port"])

    return any(("from" not in rule or any(peer_admits(p) for p in rule["from"]))
               and ("ports" not in rule or any(port_admits(p) for p in rule["ports"]))
               for rule in policy["spec"].get("ingress", []))


TRUSTED = {"tmr.ai/trusted-client": "true"}
# The Prometheus operator's labels on the pods of a Prometheus (v0.93.0, pkg/prometheus/server/statefulset.go).
PROMETHEUS = {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/managed-by": "prometheus-operator",
              "app.kubernetes.io/instance": "kube-prometheus-stack-prometheus",
              "prometheus": "kube-prometheus-stack-prometheus"}
# Istio's ingress gateway, through which KServe's Standard mode exposes an InferenceService's URL.
GATEWAY = ("istio-system", {}, {"app": "istio-ingressgateway", "istio": "ingressgateway"})


def predictor_pod(objs: dict[str, dict]) -> dict[str, str]:
    """The labels KServe (Standard mode) puts on the InferenceService's predictor pods."""
    name = objs["InferenceService"]["metadata"]["name"]
    return {"serving.kserve.io/inferenceservice": name, "component": "predictor", "app": f"isvc.{name}-predictor"}


def test_the_network_policy_selects_the_router_pods_and_only_restricts_what_comes_in(rendered) -> None:
    _, objs = rendered
    policy = objs["NetworkPolicy"]
    assert validate.problems(policy) == []
    assert policy["metadata"]["namespace"] == objs["InferenceService"]["metadata"]["namespace"]
    assert selects(policy["spec"]["podSelector"], predictor_pod(objs))
    # the pods the Services and the PodMonitor reach, and nothing else of ours
    assert policy["spec"]["podSelector"]["matchLabels"] == objs["Service"]["spec"]["selector"] \
        == objs["PodMonitor"]["spec"]["selector"]["matchLabels"]
    assert not selects(policy["spec"]["podSelector"], {"app.kubernetes.io/name": "tmr-redis"})
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # what the pod sends (Redis, the cluster's DNS) is untouched


def test_the_openai_port_is_open_to_anyone_and_tritons_ports_only_to_trusted_peers(rendered) -> None:
    _, objs = rendered
    policy = objs["NetworkPolicy"]
    (front,) = [p["containerPort"] for p in container(objs, "openai-front")["ports"]]
    triton = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}
    assert front == 9000 and triton == {"http": 8000, "grpc": 8001, "metrics": 8002}
    anyone = [OUTSIDE, ("apps", {}, {}), ("tmr", {}, {"app": "anything"}), GATEWAY, ("tmr", {}, PROMETHEUS)]
    for source in anyone:
        assert admits(policy, front, source), source
        assert not admits(policy, 8000, source) and not admits(policy, 8001, source), source
        assert not admits(policy, 12345, source), source  # no port but the pod's own
    assert not any(admits(policy, triton["metrics"], s) for s in anyone)
    # metrics: the PodMonitor's Prometheus, in its namespace, and no other pod with its labels
    assert admits(policy, triton["metrics"], ("monitoring", {}, PROMETHEUS))
    assert not admits(policy, triton["http"], ("monitoring", {}, PROMETHEUS))
    assert not admits(policy, triton["grpc"], ("monitoring", {}, PROMETHEUS))
    assert not admits(policy, triton["metrics"], ("default", {}, PROMETHEUS))
    assert not admits(policy, triton["metrics"], ("monitoring", {}, {"app.kubernetes.io/name": "grafana"}))
    # the clients the operator names: the pod label in our namespace, or pod and namespace labels elsewhere
    for port in triton.values():
        assert admits(policy, port, ("tmr", {}, TRUSTED))
        assert admits(policy, port, ("batch", TRUSTED, {**TRUSTED, "app": "evaluator"}))
        assert admits(policy, port, (GATEWAY[0], TRUSTED, {**GATEWAY[2], **TRUSTED}))  # KServe's URL, when opted in
        assert not admits(policy, port, ("batch", {}, TRUSTED))  # a pod's label alone trusts no namespace
        assert not admits(policy, port, ("batch", TRUSTED, {}))
        assert not admits(policy, port, ("batch", {"tmr.ai/trusted-client": "false"}, TRUSTED))


def test_a_policy_that_lets_triton_out_is_caught(rendered) -> None:
    """The reading above fails when a rule opens Triton: a trusted rule without `from`, 8000 beside 9000."""
    _, objs = rendered
    unguarded = copy.deepcopy(objs["NetworkPolicy"])
    del unguarded["spec"]["ingress"][2]["from"]
    assert admits(unguarded, 8000, OUTSIDE)
    public = copy.deepcopy(objs["NetworkPolicy"])
    public["spec"]["ingress"][0]["ports"].append({"port": 8000, "protocol": "TCP"})
    assert admits(public, 8000, ("apps", {}, {})) and not admits(public, 8001, ("apps", {}, {}))
    scrapes_all = copy.deepcopy(objs["NetworkPolicy"])
    del scrapes_all["spec"]["ingress"][1]["from"][0]["namespaceSelector"]  # Prometheus-labelled pods of tmr only
    assert not admits(scrapes_all, 8002, ("monitoring", {}, PROMETHEUS))


def test_prometheus_is_admitted_where_readme_installs_it(rendered) -> None:
    _, objs = rendered
    (monitoring,) = re.findall(r"^helm install kube-prometheus-stack \S+ --namespace (\S+) ", README, re.M)
    assert monitoring == "monitoring"
    for trigger in objs["ScaledObject"]["spec"]["triggers"]:  # KEDA asks the same Prometheus
        assert f".{monitoring}.svc:" in trigger["metadata"]["serverAddress"]
    (endpoint,) = objs["PodMonitor"]["spec"]["podMetricsEndpoints"]
    port = {p["name"]: p["containerPort"] for p in container(objs)["ports"]}[endpoint["port"]]
    assert admits(objs["NetworkPolicy"], port, (monitoring, {}, PROMETHEUS))


def test_another_prometheus_namespace_is_one_patch_away(tmp_path: Path) -> None:
    """The patch base/networkpolicy.yaml gives for a Prometheus in another namespace, as `kustomize edit` adds it."""
    text = (KUBE / "base" / "networkpolicy.yaml").read_text()
    patch = re.search(r"--patch \\\n\s*#\s*'(\[.*\])'$", text, re.M)[1].replace('"NS"', '"observability"')
    shutil.copytree(KUBE, tmp_path / "kubernetes")
    overlay = tmp_path / "kubernetes" / "overlays" / "cpu"
    kustomization = yaml.safe_load((overlay / "kustomization.yaml").read_text())
    kustomization["patches"].append({"target": {"kind": "NetworkPolicy", "name": "tmr-router"}, "patch": patch})
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    (policy,) = [d for d in render(overlay) if d["kind"] == "NetworkPolicy"]
    assert validate.problems(policy) == []
    assert admits(policy, 8002, ("observability", {}, PROMETHEUS))
    assert not admits(policy, 8002, ("monitoring", {}, PROMETHEUS))


def test_the_redis_answers_only_the_router_pods_and_trusted_clients(tmp_path: Path) -> None:
    docs = with_component(tmp_path, "cpu", "redis")
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    assert set(policies) == {"tmr-router", "tmr-redis"}
    policy = policies["tmr-redis"]
    assert validate.problems(policy) == []
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (service,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "tmr-redis"]
    assert selects(policy["spec"]["podSelector"], deployment["spec"]["template"]["metadata"]["labels"])
    objs = {d["kind"]: d for d in docs if d["kind"] not in ("Service", "Deployment", "NetworkPolicy")}
    assert not selects(policy["spec"]["podSelector"], predictor_pod(objs))
    port = service["spec"]["ports"][0]["port"]
    assert admits(policy, port, ("tmr", {}, predictor_pod(objs)))  # the router's cache, the front's keys
    assert admits(policy, port, ("tmr", {}, TRUSTED))
    for source in (OUTSIDE, ("tmr", {}, {"app": "anything"}), ("apps", {}, predictor_pod(objs)),
                   ("monitoring", {}, PROMETHEUS), GATEWAY):
        assert not admits(policy, port, source), source


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
