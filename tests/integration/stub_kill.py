"""SIGKILL a Python-backend stub at a moment when it holds none of its shared-memory locks.

Triton 24.10's Python backend shares robust interprocess mutexes (message queues, the health flag,
the shared-memory allocator) between tritonserver and each stub. A stub killed while it holds one
leaves it owner-dead, and tritonserver's next lock throws `boost::interprocess::lock_exception`,
which nothing catches: the whole server aborts (README, Not yet). A real crash can land there too;
a test that means to prove self-healing must not, or it proves nothing on the runs where it does.

So the stub is stopped first and its threads' robust-futex lists read from outside (the kernel's
get_robust_list, then the list heads from /proc/<pid>/mem): glibc keeps every robust mutex a
thread holds on that list, and the one it is taking in `list_op_pending`. The stub is killed only
when every list is empty; otherwise it is resumed and tried again a moment later.
"""
from __future__ import annotations

import ctypes
import os
import signal
import struct
import time
from pathlib import Path

_GET_ROBUST_LIST = 274  # x86_64
_libc = ctypes.CDLL(None, use_errno=True)


def _robust_head(tid: int) -> int:
    head, size = ctypes.c_void_p(), ctypes.c_size_t()
    if _libc.syscall(_GET_ROBUST_LIST, tid, ctypes.byref(head), ctypes.byref(size)) != 0:
        raise OSError(ctypes.get_errno(), f"get_robust_list({tid})")
    return head.value or 0


def _tasks(pid: int) -> list[int]:
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def _all_stopped(pid: int) -> bool:
    for tid in _tasks(pid):
        try:
            state = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended
        if state not in ("T", "t", "Z", "X"):
            return False
    return True


def holds_a_robust_lock(pid: int) -> bool:
    """Does any thread of stopped process `pid` hold, or is it taking, a robust mutex?"""
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for tid in _tasks(pid):
            try:
                head = _robust_head(tid)
            except OSError:
                continue  # the thread ended
            if not head:
                continue  # no list registered: it never takes a robust mutex
            mem.seek(head)
            following, _offset, pending = struct.unpack("<QqQ", mem.read(24))
            if following != head or pending:
                return True
    return False


def sigkill_stub(pid: int, attempts: int = 2000) -> None:
    """SIGKILL stub `pid` once none of its threads holds or is taking a robust (shared) mutex."""
    for _ in range(attempts):
        os.kill(pid, signal.SIGSTOP)
        # A hang bound only: a stub's threads at idle priority beside a busy core take long to stop.
        deadline = time.monotonic() + 120
        while not _all_stopped(pid):
            assert time.monotonic() < deadline, f"stub {pid} did not stop within 120 s of SIGSTOP"
            time.sleep(0.001)
        if not holds_a_robust_lock(pid):
            os.kill(pid, signal.SIGKILL)
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.002)
    os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"stub {pid} held a shared-memory lock at each of {attempts} stops")
