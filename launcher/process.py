"""A child process in a session (and process group) of its own: start it, wait for it to come up, and
stop it with everything it started."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

import psutil

log = logging.getLogger(__name__)

# How long a stop waits for the processes of a group to die once they were sent SIGKILL.
KILL_WAIT_S = 10.0


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (/proc/<pid>/stat utime + stime)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def try_nice(value: int) -> None:
    """Set this process's nice value; where it is not permitted, run at the default priority."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, value)
    except OSError:
        pass


def spawn(command: list[str], log_file: Path, env: dict[str, str], nice: int,
          cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` with its output appended to `log_file`, at `nice`, leading a new session: a
    terminal's Ctrl-C reaches only the launcher, which stops its children in order, and a stop can reach
    the children's own children (Triton's stubs) through the process group."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, preexec_fn=lambda: try_nice(nice))


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, what: str, log_file: Path) -> None:
    """Poll `ready` until it holds; RuntimeError (with the log's tail) if the process exits first,
    TimeoutError after `timeout` seconds. An exception from `ready` counts as not ready yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log_file}:\n{tail(log_file)}")
        try:
            if ready():
                return
        except Exception:  # not listening yet
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} is not up after {timeout}s; see {log_file}")


def tail(log_file: Path, lines: int = 40) -> str:
    """The last `lines` lines of a log ("" when it cannot be read)."""
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def group_members(pgid: int) -> list[psutil.Process]:
    """Live processes of the process group `pgid`; zombies (dead, waiting to be reaped) aside."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):  # gone while we looked
            continue
    return members


def stop_group(proc: subprocess.Popen, timeout: float, what: str) -> int:
    """SIGTERM the group's leader and wait up to `timeout` for it, then SIGKILL the whole group; then
    kill whatever of the group outlived its leader (a stub whose server was killed). Returns the
    leader's exit status: negative for a signal (-9 when it had to be killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %ss; killing it", what, timeout)
            _kill_group(proc.pid)
    rc = proc.wait()
    deadline = time.monotonic() + KILL_WAIT_S
    while (left := group_members(proc.pid)) and time.monotonic() < deadline:
        _kill_group(proc.pid)
        time.sleep(0.1)
    if left:
        log.warning("%s: processes %s of its group outlived it", what, [p.pid for p in left])
    return rc


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # the group is empty already
        pass
