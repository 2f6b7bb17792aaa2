"""Start and stop a real `tritonserver` (from the nvidia-pytriton wheel) on our model repository, the
OpenAI-compatible front beside it, and the watchdog that restarts the router's stub.

Tooling, not the runtime: used by scripts/serve.py, the benchmarks and the integration tests' fixtures.
- `environment`: where the server's binary, backends and models are, and the environment it runs in;
- `process`: a child process in a process group of its own (start, wait until up, stop with its children);
- `triton`: `TritonServer`; `front`: `FrontProcess`; `watchdog`: `keep_router_alive`.
"""
from .environment import DEFAULT_MODELS_DIR, RUN_DIR, prepare_backends, pytriton_root, server_env
from .front import FrontProcess
from .process import free_port, try_nice
from .triton import TritonServer
from .watchdog import keep_router_alive

__all__ = ["DEFAULT_MODELS_DIR", "RUN_DIR", "FrontProcess", "TritonServer", "free_port", "keep_router_alive",
           "prepare_backends", "pytriton_root", "server_env", "try_nice"]
