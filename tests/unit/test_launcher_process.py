"""The launcher's process handling on plain shell processes (the real tritonserver is in tests/integration):
a stop leaves nothing of the process group behind, seen from /proc through psutil, not from the launcher."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from launcher.process import spawn, stop_group, wait_until


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def child_pid(proc, log: Path) -> int:
    """The pid the shell wrote to its log once its child ran."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = log.read_text()
        if text.strip().isdigit():
            return int(text)
        time.sleep(0.05)
    raise AssertionError(f"the shell never started its child: {log.read_text()!r}")


def test_a_leader_that_ignores_sigterm_is_killed_with_its_children(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = spawn(["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"], log, dict(os.environ), nice=0)
    child = child_pid(proc, log)
    assert os.getpgid(child) == proc.pid  # the child is in the leader's group
    rc = stop_group(proc, timeout=0.5, what="test shell")
    assert rc == -signal.SIGKILL
    assert not alive(proc.pid) and not alive(child)


def test_children_left_behind_by_a_leader_that_stopped_are_killed(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    # The shell dies on SIGTERM; its child, which ignores SIGTERM, would outlive it (as a stub its server).
    proc = spawn(["sh", "-c", "(trap '' TERM; sleep 60) & echo $!; wait"], log, dict(os.environ), nice=0)
    child = child_pid(proc, log)
    rc = stop_group(proc, timeout=5, what="test shell")
    assert rc == -signal.SIGTERM
    assert not alive(child)


def test_a_process_that_exits_before_it_is_up_is_reported_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = spawn(["sh", "-c", "echo broken config; exit 3"], log, dict(os.environ), nice=0)
    with pytest.raises(RuntimeError, match=r"(?s)test shell exited with 3; see .*broken config"):
        wait_until(proc, lambda: False, timeout=30, what="test shell", log_file=log)
