"""The router's outbox: every response on one thread, in order per request, heartbeats only while a
request that asked for them is open, nothing after its final response."""
from __future__ import annotations

import threading
import time

from model_router.serving.heartbeat import FINAL_FLAG, Outbox


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int]] = []  # (response, flags, sending thread)
        self.lock = threading.Lock()

    def send(self, response: str, flags: int) -> None:
        with self.lock:
            self.sent.append((response, flags, threading.get_ident()))


def test_responses_from_many_threads_go_out_on_one_in_order() -> None:
    outbox, rec = Outbox(lambda: "beat"), Recorder()
    lines = [outbox.open(rec.send) for _ in range(8)]

    def worker(i: int) -> None:
        for n in range(20):
            lines[i].send(f"{i}:{n}")
        lines[i].send(f"{i}:end", FINAL_FLAG)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    outbox.stop()
    assert len(rec.sent) == 8 * 21 and len({tid for *_, tid in rec.sent}) == 1
    assert threading.get_ident() not in {tid for *_, tid in rec.sent}
    for i in range(8):
        mine = [r for r, *_ in rec.sent if r.startswith(f"{i}:")]
        assert mine == [f"{i}:{n}" for n in range(20)] + [f"{i}:end"]


def test_heartbeats_while_open_and_none_after_the_final_response() -> None:
    outbox, rec = Outbox(lambda: "beat", tick_s=0.02), Recorder()
    line = outbox.open(rec.send, 0.1)
    quiet = outbox.open(rec.send)  # asked for none
    time.sleep(0.55)
    line.send("answer", FINAL_FLAG)
    quiet.send("other", FINAL_FLAG)
    line.send("late")  # after the final response: dropped
    time.sleep(0.3)
    outbox.stop()
    got = [r for r, *_ in rec.sent]
    assert 3 <= got.count("beat") <= 6, got
    assert got[-2:] == ["answer", "other"] or got[-2:] == ["other", "answer"]
    assert "late" not in got and got.index("answer") > max(i for i, r in enumerate(got) if r == "beat")
