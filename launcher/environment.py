"""Where a launched server finds its binary, backends and models, and the environment it runs in."""
from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

from model_router import REPO_ROOT

RUN_DIR = REPO_ROOT / ".run"
# Prepared weights: TMR_MODELS when set (as the servers read it), else the setup's folder in this checkout.
DEFAULT_MODELS_DIR = Path(os.environ.get("TMR_MODELS") or REPO_ROOT / ".cache" / "models")


def pytriton_root() -> Path:
    """The folder of the tritonserver build that ships inside nvidia-pytriton."""
    import pytriton

    root = Path(pytriton.__file__).resolve().parent / "tritonserver"
    if not (root / "bin" / "tritonserver").exists():
        raise FileNotFoundError(f"tritonserver not found under {root}; is nvidia-pytriton==0.7.0 installed?")
    return root


def prepare_backends(dest: Path = RUN_DIR / "backends") -> Path:
    """Backend dir: Triton's Python backend with the stub for this Python, plus ours (linked)."""
    root = pytriton_root()
    py = dest / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not (py / "triton_python_backend_stub").exists():
        shutil.copytree(root / "backends" / "python", py, dirs_exist_ok=True)
        shutil.copy2(stub, py / "triton_python_backend_stub")
    for backend in (REPO_ROOT / "python_backends").iterdir():
        link = dest / backend.name
        if backend.is_dir() and not link.exists():
            link.symlink_to(backend, target_is_directory=True)
    return dest


def server_env(models_dir: Path = DEFAULT_MODELS_DIR) -> dict[str, str]:
    """This process's environment, made fit for tritonserver and the Python-backend stubs it starts."""
    import pytriton

    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    env = dict(os.environ)
    py_libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), py_libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    # The stub embeds Python, ignores PYTHONPATH and finds its prefix through the `python3` on
    # PATH: put this interpreter's bin first so that the stub runs in our venv (numpy<2 there).
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.setdefault("TMR_MODELS", str(models_dir))
    env.setdefault("TMR_REPO", str(REPO_ROOT))
    env.setdefault("OMP_NUM_THREADS", "2")
    # OpenMP threads spin briefly between parallel regions, then sleep. Spinning at will (OpenMP's
    # default, 300,000 spins) let a generating LLM at serving priority starve the router and Triton's
    # frontends on 2 cores; sleeping at once (PASSIVE) left a batched decode step's many small regions
    # waiting on wake-ups. 8 streams through the router, scripts/bench_batching.py: 1.15 answers/s
    # spinning, 1.75 passive, 2.07 with 300 spins, 2.24-2.29 with 2,000 (x4.3-4.4 concurrency 1).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("GOMP_SPINCOUNT", "2000")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env.setdefault("TQDM_DISABLE", "1")  # no progress bars in the server log
    return env
