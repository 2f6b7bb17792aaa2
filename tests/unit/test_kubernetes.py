"""The Kubernetes deployment (deploy/kubernetes), checked offline: every overlay renders, every object
validates (Kubernetes 1.32's kinds strictly, KServe's, KEDA's and the Prometheus operator's against
their pinned upstream CRDs), the pod KServe would build gives each container what it reads, and
image, ports, probes, flags and the autoscaler's arithmetic agree with compose, the images, the
launcher and README. The weights, the optional components and the probe script:
test_kubernetes_components.py."""
from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from pathlib import Path

from model_router import REPO_ROOT
from model_router.registry import load_registry
from model_router.settings import RouterSettings
from model_router.triton.control import repository_config

from .kube import (COMPOSE, CPU_DOCKERFILE, DOCKERFILE, KSERVE_CONTAINER, KSERVE_MODEL_MOUNT, KUBE, OVERLAYS, PINS,
                   README, READY_PATHS, SERVICES, STARTUP_PATHS, container, healthcheck, render, validate)
from .kube import rendered  # noqa: F401 (a fixture)


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
    kinds = {"Namespace", "Service", "ServingRuntime", "InferenceService", "ScaledObject", "PodMonitor",
             "NetworkPolicy"}
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


def mebibytes(quantity: str) -> int:
    """A Kubernetes (Gi, Mi) or compose (g, m) memory quantity in MiB."""
    number, unit = re.fullmatch(r"(\d+)(Gi|Mi|g|m)", quantity).groups()
    return int(number) * (1024 if unit in ("Gi", "g") else 1)


# What the router's budget does not count: tritonserver, the stubs' interpreters (torch imported in
# each), the classifier's runtime. The CPU pod keeps at least this beside the budget.
CPU_OVERHEAD_MB = 2500
NODE_MB = 24 * 1024  # the CPU profile's machines: 24 GiB, one replica each with room for the system


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
        return
    # the CPU pod: memory guaranteed as it is limited, the budget (MB) with Triton's own beside it,
    # and the whole pod (the OpenAI sidecar too) within one machine
    assert resources["requests"]["memory"] == limit
    assert mebibytes(limit) * 1.048576 >= budget_mb + CPU_OVERHEAD_MB
    sidecar = container(objs, "openai-front")["resources"]["requests"]["memory"]
    pod_mib = mebibytes(limit) + mebibytes(sidecar)
    assert pod_mib <= NODE_MB - 2048  # the kubelet's and the system's share of the node
    # docker compose runs both in one container: its limit holds the pod's two
    assert mebibytes(SERVICES["triton-cpu"]["mem_limit"]) >= pod_mib


# -- metrics and autoscaling -----------------------------------------------------------------------
def test_the_pod_monitor_carries_the_kube_prometheus_stack_label(rendered) -> None:
    _, objs = rendered
    release = objs["PodMonitor"]["metadata"]["labels"]["release"]
    assert re.search(rf"^helm install {release} prometheus-community/kube-prometheus-stack\b", README, re.M)
    assert f"http://prometheus-operated.monitoring.svc:9090" in json.dumps(objs["ScaledObject"])
    assert re.search(rf"^helm install {release} \S+ .*--namespace monitoring\b", README, re.M)


def readme_pods() -> tuple[float, dict[str, tuple[float, dict[int, int]]]]:
    """README's "Pods for N users", from its words: (seconds between a user's requests, {overlay: (its
    `served` threshold, {users: pods})})."""
    paragraph = re.search(r"^\*\*Pods for N users.*?(?=\n\n)", README, re.M | re.S).group(0)
    text = " ".join(paragraph.split()).replace(",000", "000")
    (every_s,) = re.findall(r"asks about once every [\d.]+ \+ [\d.]+ = ([\d.]+) s", text)
    thresholds = dict(re.findall(r"\b(CPU|GPU) overlay's threshold of (\d+)", text))
    out = {kind.lower(): (float(thresholds[kind]), {int(users): int(pods), int(more): int(more_pods)})
           for users, pods, kind, more, more_pods
           in re.findall(r"(\d+) users need (\d+) (CPU|GPU) pods,? (?:and )?(\d+) users (\d+)", text)}
    assert set(out) == set(OVERLAYS), f"README's pods for N users name {sorted(out)}, not {OVERLAYS}"
    return float(every_s), out


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
    # README's pods for N users: a request every `every_s` a user (an answer's time, plus the time between)
    every_s, pods_for = readme_pods()
    readme_threshold, pods = pods_for[overlay]
    assert readme_threshold == float(threshold["served"]), f"README's {overlay} threshold is not the overlay's"
    for users, replicas in pods.items():
        assert hpa_replicas(users / every_s, threshold["served"]) == replicas, f"{users} users on {overlay}"
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
    config = json.loads(repository_config(REPO_ROOT / "model_repository" / "router"))  # as Triton hands it
    env = {e["name"]: e.get("value", "") for e in container(objs).get("env", [])}
    return RouterSettings.read(config, env)


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
