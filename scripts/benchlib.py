"""Shared by the benchmark scripts: perf_analyzer runs and a server to run them against."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from launcher import TritonServer


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo): every number a benchmark prints is this machine's."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def perf_env() -> dict[str, str]:
    """perf_analyzer links libcudart.so.12: take it from the nvidia-cuda-runtime-cu12 wheel."""
    import nvidia.cuda_runtime

    lib = Path(next(iter(nvidia.cuda_runtime.__path__))) / "lib"
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(lib), env.get("LD_LIBRARY_PATH", "")) if p)
    return env


def perf_analyzer(model: str, url: str, concurrency: int, input_data: Path | None = None, protocol: str = "http",
                  interval_ms: int = 4000, extra: list[str] | None = None) -> dict[str, float]:
    """One perf_analyzer run; returns p50/p90/p99 in ms and throughput in infer/s."""
    exe = Path(sys.executable).parent / "perf_analyzer"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pa.csv"
        cmd = [str(exe), "-m", model, "-u", url, "-i", protocol, f"--concurrency-range={concurrency}:{concurrency}",
               f"--measurement-interval={interval_ms}", "--stability-percentage=50", "--max-trials=6",
               "-f", str(out), *(["--input-data", str(input_data)] if input_data else []), *(extra or [])]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=perf_env(), timeout=600)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"perf_analyzer failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        row = next(csv.DictReader(out.open()))
    return {"p50_ms": int(row["p50 latency"]) / 1000, "p90_ms": int(row["p90 latency"]) / 1000,
            "p99_ms": int(row["p99 latency"]) / 1000, "throughput": float(row["Inferences/Second"])}


@contextmanager
def server(url: str | None, load: list[str], **kwargs) -> Iterator[tuple[str, str, TritonServer | None]]:
    """(http_url, grpc_url, server): the running one at `url` (host:http_port), else a fresh one."""
    if url:
        host, port = url.rsplit(":", 1)
        yield url, f"{host}:{int(port) + 1}", None
        return
    # Benchmarks measure the models: no response cache unless one asks for it (bench_cache).
    kwargs["env"] = {"TMR_CACHE_URL": "off", **kwargs.get("env", {})}
    srv = TritonServer(load=load, **kwargs).start(timeout=300)
    try:
        yield srv.http_url, srv.grpc_url, srv
    finally:
        srv.stop()
