"""Ask the real server, one request at a time, and measure each answer: the client's wall time, the
engine's own CPU time read from /proc (utime + stime of its stub processes, before and after), and the
engine-reported tokens."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from model_router.contract.request import RouteOptions
from model_router.contract.sampling import SamplingParams
from model_router.contract.tools import ToolCall
from client.api import RouterClient
from model_router.serving.stubs import stub_pids

from .answers import AnswerRecord
from .tasks import Task

if TYPE_CHECKING:  # the client package sits beside model_router, above it
    from client.api import RouterClient

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tritonserver_pid(grpc_port: int, proc: Path = Path("/proc")) -> int:
    """The tritonserver on this machine that serves gRPC on `grpc_port` (the eval runs beside it to
    read its processes' CPU time)."""
    flag = f"--grpc-port={grpc_port}".encode()
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args[0].endswith(b"tritonserver") and flag in args:
                return int(entry.name)
    raise RuntimeError(f"no tritonserver with {flag.decode()} on this machine: the evaluation reads the engines' "
                       "CPU time from /proc, so it runs beside the server (or pass --server-pid)")


def cpu_seconds(pids: list[int], proc: Path = Path("/proc")) -> float:
    total = 0
    for pid in pids:
        try:
            fields = (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


class Collector:
    """One task at a time through the router (a gRPC RouterClient), measured."""

    def __init__(self, client: RouterClient, server_pid: int, models: list[str]) -> None:
        self.client, self.server_pid, self.models = client, server_pid, models

    def _engine_cpu(self) -> dict[str, float]:
        pids = stub_pids(self.server_pid)
        return {m: cpu_seconds(pids.get(m, [])) for m in self.models}

    def warm(self) -> None:
        """Load every model and let it answer once (no measured answer pays for a load), then make sure
        each one's engine processes are in sight: an answer's CPU is read from them."""
        for model in self.models:
            self.client.route("Say hello.", RouteOptions(model=model, allow_fallback=False, cache="off",
                                                         sampling_parameters=SamplingParams(max_tokens=4)))
        pids = stub_pids(self.server_pid)
        unseen = [m for m in self.models if not pids.get(m)]
        if unseen:
            raise RuntimeError(f"no engine process of {unseen} under tritonserver pid {self.server_pid} in /proc: "
                               "the evaluation must run beside the server it asks (or pass --server-pid)")

    def ask(self, task: Task, label: str, **options: object) -> AnswerRecord:
        """`label` names the record (the model asked for, or the routed policy); `options` go to the router."""
        before = self._engine_cpu()
        started = time.perf_counter()
        record = AnswerRecord(task.id, label, task.request_key())
        try:
            got = self.client.route(task.prompt, task.options(**options))
        except Exception as exc:  # a failed answer is a wrong one, kept with its reason
            record.error = str(exc)[:500]
            record.latency_s = round(time.perf_counter() - started, 3)
            return record
        record.latency_s = round(time.perf_counter() - started, 3)
        after = self._engine_cpu()
        decision = got.decision
        record.served_by, record.decided_by = decision.get("model", ""), decision.get("decided_by", "")
        record.decision_id, record.load_ms = decision.get("id", ""), float(decision.get("load_ms") or 0.0)
        # The engine that answered: an answer's CPU is its own engine's (one request at a time).
        record.cpu_s = round(after.get(record.served_by, 0.0) - before.get(record.served_by, 0.0), 3)
        record.text, record.finish_reason = got.text, got.finish_reason
        calls = [ToolCall.model_validate(c).function for c in got.tool_calls or []]
        record.tool_calls = [[f.name, f.arguments] for f in calls]
        if got.usage is not None:
            record.prompt_tokens, record.completion_tokens = got.usage.prompt_tokens, got.usage.completion_tokens
        return record

