"""The stub processes of this tritonserver's Python-backend models, found in /proc, and what they hold.

A stub's command line names its server (the parent pid Triton passes it) and its model instance
(`<model>_<group>_<index>`), so the router can tell, from inside its own stub, which processes
serve which model, whether a model's stub has died, and how much memory a model really takes.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

STUB = "triton_python_backend_stub"
_INSTANCE = re.compile(r"^(?P<model>.+)_\d+_\d+$")
# Processes already seen not to be stubs, by pid and the birth of their /proc entry (a reused pid is a
# new entry): the health watcher looks every second, and reading every process's command line each
# time was a fifth of the router's CPU under load (scripts/profile_router.py).
_NOT_STUBS: dict[int, int] = {}


def stub_pids(server_pid: int | None = None, proc: Path = Path("/proc")) -> dict[str, list[int]]:
    """model -> pids of its live stubs, for the server `server_pid` (default: this stub's parent)."""
    server = str(server_pid or os.getppid())
    found: dict[str, list[int]] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        try:
            pid, born = int(entry.name), entry.stat().st_ctime_ns
            if _NOT_STUBS.get(pid) == born:
                continue
            args = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            state, parent = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except OSError:  # gone while we looked
            continue
        if not args[0].endswith(STUB.encode()):
            # The server's child is tritonserver, then `bash -c "exec <stub> ..."`, before it is the stub,
            # all with the same pid and /proc entry: never taken for a process that is not a stub.
            if parent != server:
                _NOT_STUBS[pid] = born
            continue
        if len(args) < 9 or args[5].decode() != server or state == "Z":
            continue
        match = _INSTANCE.match(args[8].decode(errors="replace"))
        if match:
            found.setdefault(match["model"], []).append(pid)
    return found


def host_mb(pids: list[int], proc: Path = Path("/proc")) -> float:
    """Host memory of these processes, as PSS (shared pages split among their users; RSS where the
    kernel has no smaps_rollup), in MB."""
    total_kb = 0
    for pid in pids:
        try:
            text = (proc / str(pid) / "smaps_rollup").read_text()
            key = "Pss:"
        except OSError:
            try:
                text, key = (proc / str(pid) / "status").read_text(), "VmRSS:"
            except OSError:
                continue
        for line in text.splitlines():
            if line.startswith(key):
                total_kb += int(line.split()[1])
                break
    return total_kb / 1024
