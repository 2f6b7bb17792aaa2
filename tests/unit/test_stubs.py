"""Stub processes found in /proc (a stand-in /proc of plain folders): a server's stubs by model, and
the processes already seen not to be stubs skipped on later looks, unless their entry is new."""
from __future__ import annotations

import os
import time
from pathlib import Path

from model_router.serving import stubs


def process(proc: Path, pid: int, args: list[str], state: str = "S", parent: int = 1) -> Path:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")
    (entry / "stat").write_text(f"{pid} (x) {state} {parent} 2 3")
    return entry


def stub(server: int, instance: str) -> list[str]:
    return ["/x/triton_python_backend_stub", "model.py", "prefix", "1", "2", str(server), "/b", "336", instance]


def test_stubs_by_model_and_others_read_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stubs, "_NOT_STUBS", {})
    process(tmp_path, 10, stub(7, "router_0_0"))
    process(tmp_path, 11, stub(7, "smollm2_0_0"))
    process(tmp_path, 12, stub(8, "router_0_0"))  # another server's
    process(tmp_path, 13, stub(7, "tts_0_0"), state="Z")  # dead, not yet reaped
    other = process(tmp_path, 14, ["/usr/bin/python3", "app.py"])
    forking = process(tmp_path, 15, ["/opt/tritonserver", "--model-repository=x"], parent=7)
    # How Triton's Python backend starts a stub: its child runs bash, which execs the stub in place.
    launching = process(tmp_path, 16, ["bash", "-c", " exec /x/triton_python_backend_stub model.py"], parent=7)
    assert stubs.stub_pids(7, tmp_path) == {"router": [10], "smollm2": [11]}
    assert 14 in stubs._NOT_STUBS and not {15, 16} & set(stubs._NOT_STUBS)  # the server's children may be stubs next
    (other / "cmdline").write_bytes(b"changed")  # not read again: the same entry
    for entry, instance in ((forking, "ocr_0_0"), (launching, "tts_0_0")):
        (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in stub(7, instance)) + b"\0")
    assert stubs.stub_pids(7, tmp_path) == {"router": [10], "smollm2": [11], "ocr": [15], "tts": [16]}
    time.sleep(0.01)
    for name in os.listdir(other):  # pid 14 reused by a new process: a new /proc entry
        (other / name).unlink()
    other.rmdir()
    process(tmp_path, 14, stub(7, "video_0_0"))
    assert stubs.stub_pids(7, tmp_path)["video"] == [14]
