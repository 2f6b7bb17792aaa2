"""Run untrusted Python (a model's answer to a coding task, then the task's tests) in a child process.

Layers, outermost first:
- the operating system: where it allows, the child runs in a network namespace of its own (no interface
  but a loopback that is down) and, when the evaluator is root, as the unprivileged user `nobody`, so
  that it can neither reach the network nor write the evaluator's files;
- an audit hook (PEP 578), installed before the answer runs and kept in a closure, that refuses
  sockets, starting processes, native code, heap introspection and writes outside the child's own
  temporary directory; a hook cannot be removed once added;
- resource limits: CPU seconds, address space, file size (stdout and stderr are files too), and a
  wall clock that kills the whole process group.

The answer runs as a module named `answer` (a demo under `if __name__ == "__main__":` stays silent);
the tests then run in its namespace, and only a run that reaches the end prints the token the evaluator
chose, so an answer that exits early (sys.exit, os._exit) fails. This guards the machine against an
answer's accidents and harm; it does not stop code written to forge its own grade (the token is in
the child's memory), which the models under test have no reason to write.
"""
from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOBODY = 65534
_PRELUDE = r'''
import json, os, resource, sys

def _limits(cpu_s, memory_b):
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_b, memory_b))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

def _guard(home):
    banned = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
              "os.forkpty", "os.kill", "os.killpg", "pty.", "webbrowser.", "ctypes.", "urllib.", "gc.get_",
              "sys._current_frames", "sys.setprofile", "sys.settrace", "cpython.", "sys.addaudithook")
    modules = frozenset({"socket", "_socket", "ssl", "_ssl", "http", "urllib", "ftplib", "smtplib", "poplib",
                         "imaplib", "telnetlib", "xmlrpc", "asyncio", "selectors", "select", "subprocess",
                         "_posixsubprocess", "multiprocessing", "ctypes", "_ctypes", "requests", "httpx"})
    changes = ("os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.symlink", "os.link", "os.chmod", "os.chown",
               "os.truncate", "os.utime", "shutil.")
    write = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    realpath, prefix = os.path.realpath, home + os.sep

    def outside(path):
        return isinstance(path, (str, bytes, os.PathLike)) and not realpath(os.fsdecode(path)).startswith(prefix)

    def hook(event, args):
        if event == "import":
            if args[0].partition(".")[0] in modules:
                raise PermissionError(f"sandbox: import of {args[0]} refused")
        elif event.startswith(banned):
            raise PermissionError(f"sandbox: {event} refused")
        elif event == "open" and args[0] is not None and outside(args[0]) and (
                isinstance(args[2], int) and args[2] & write
                or isinstance(args[1], str) and set(args[1]) & set("wax+")):
            raise PermissionError(f"sandbox: writing {args[0]} refused (only its own directory)")
        elif event.startswith(changes) and args and outside(args[0]):
            raise PermissionError(f"sandbox: {event} on {args[0]} refused (only its own directory)")
    return hook

def _run():
    job = json.loads(sys.stdin.read())
    token = job.pop("token")
    _limits(job["cpu_s"], job["memory_b"])
    answer, tests = compile(job["answer"], "answer.py", "exec"), compile(job["tests"], "tests.py", "exec")
    sys.addaudithook(_guard(os.getcwd()))
    space = {"__name__": "answer", "__builtins__": __builtins__}
    try:
        exec(answer, space)
        exec(tests, space)
    except SystemExit:
        sys.stderr.write("SystemExit: the answer exited before its tests ran to the end\n")
        sys.stderr.flush()
        os._exit(3)
    sys.stdout.write(token)
    sys.stdout.flush()

_run()
'''


@dataclass(frozen=True)
class Run:
    ok: bool
    why: str  # "" when the tests ran to the end, else what stopped them (a failed assert, a limit, a refusal)


@functools.lru_cache(maxsize=1)
def isolation() -> tuple[tuple[str, ...], str]:
    """The command prefix that isolates the child, and what it gives: the strongest this machine allows."""
    candidates = []
    if os.geteuid() == 0:
        candidates.append((("unshare", "--net", "--", "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                            "--clear-groups", "--no-new-privs", "--"), "no network, user nobody"))
    candidates.append((("unshare", "--map-root-user", "--net", "--"), "no network"))
    for prefix, what in candidates:
        try:
            if subprocess.run([*prefix, sys.executable, "-c", ""], capture_output=True, timeout=30).returncode == 0:
                return prefix, what
        except (OSError, subprocess.SubprocessError):
            continue
    return (), "audit hook only"


def run_python(source: str, tests: str = "", timeout_s: float = 10.0, memory_mb: int = 512) -> Run:
    """Run `source`, then `tests` in its namespace, in the sandbox: ok when the tests ran to the end."""
    token = secrets.token_hex(16)
    job = {"answer": source, "tests": tests, "token": token, "cpu_s": max(1, int(timeout_s)),
           "memory_b": memory_mb * 2**20}
    prefix, _ = isolation()
    with tempfile.TemporaryDirectory(prefix="tmr-sandbox-") as home, tempfile.TemporaryDirectory() as logs:
        os.chmod(home, 0o777)  # the child may run as nobody: its own directory is the one it may write
        out, err = Path(logs, "out"), Path(logs, "err")
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen([*prefix, sys.executable, "-I", "-S", "-B", "-c", _PRELUDE], stdin=subprocess.PIPE,
                                    stdout=stdout, stderr=stderr, cwd=home, start_new_session=True,
                                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
            try:
                proc.communicate(json.dumps(job).encode(), timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return Run(False, f"stopped after {timeout_s:g} s (wall clock)")
        finished = token in out.read_bytes()[-4096:].decode(errors="replace")
        last = err.read_bytes()[-4096:].decode(errors="replace").strip().splitlines()[-1:]
    if proc.returncode == 0 and finished:
        return Run(True, "")
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return Run(False, f"stopped at its CPU limit ({job['cpu_s']} s)")
    if proc.returncode == -signal.SIGXFSZ:
        return Run(False, "stopped at its output limit (1 MiB)")
    if proc.returncode == 0:
        return Run(False, "exited before its tests ran to the end")
    return Run(False, (last[0] if last else f"exit status {proc.returncode}")[:300])
