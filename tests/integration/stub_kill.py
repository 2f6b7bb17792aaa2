"""SIGKILL a Python-backend stub at a moment when it holds none of its shared-memory locks.

Triton 24.10's Python backend shares robust interprocess mutexes (message queues, the health flag,
the shared-memory allocator) between tritonserver and each stub. A stub killed inside one of those
short critical sections leaves its mutex owner-dead, and tritonserver's next lock throws
`boost::interprocess::lock_exception`, which nothing catches: the whole server aborts (README, Not
yet). A real crash can land there too; a test that means to prove self-healing must not, or it
proves nothing on the runs where it does. So the stub is stopped first, and killed only when every
thread sits either in a system call or in code outside the stub binary and libc (the critical
sections are inlined in the stub and lock through libc); otherwise it is resumed and tried again.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def _maps(pid: int) -> list[tuple[int, int, str]]:
    spans = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and "x" in fields[1]:
            start, end = (int(x, 16) for x in fields[0].split("-"))
            spans.append((start, end, fields[5]))
    return spans


def _all_stopped(pid: int) -> bool:
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


def _locking_code(pid: int) -> set[str]:
    """Executable mappings whose code may hold or take an interprocess mutex: the stub and libc."""
    exe = os.path.realpath(f"/proc/{pid}/exe")
    return {path for _, _, path in _maps(pid) if path == exe or os.path.basename(path).startswith("libc.so")}


def _may_hold_a_lock(pid: int, unsafe: set[str]) -> bool:
    spans = _maps(pid)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "syscall").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if not fields or fields[0] == "running":
            return True
        if fields[0] != "-1":
            continue  # inside a system call: not within a critical section's few instructions
        pc = int(fields[-1], 16)
        if any(start <= pc < end and path in unsafe for start, end, path in spans):
            return True
    return False


def sigkill_stub(pid: int, attempts: int = 2000) -> None:
    """SIGKILL stub `pid` once none of its threads can be inside a shared-memory critical section."""
    unsafe = _locking_code(pid)
    assert unsafe, f"process {pid} maps neither its executable nor libc: is it a stub?"
    for _ in range(attempts):
        os.kill(pid, signal.SIGSTOP)
        deadline = time.monotonic() + 10
        while not _all_stopped(pid):
            assert time.monotonic() < deadline, f"stub {pid} did not stop within 10 s of SIGSTOP"
            time.sleep(0.001)
        if not _may_hold_a_lock(pid, unsafe):
            os.kill(pid, signal.SIGKILL)
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)
    os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"stub {pid} was inside its own code or libc at each of {attempts} stops")
