"""The text generator's outbox: a send that never returns (Triton 24.10, a BLS requester whose stub
died) is left behind, and every other answer still goes out, one sending thread at a time."""
from __future__ import annotations

import threading

from transformers_backend.outbox import Outbox


class Sender:
    def __init__(self, blocks: bool = False) -> None:
        self.blocks, self.sent, self.release = blocks, [], threading.Event()
        self.threads: set[int] = set()

    def send(self, response: object = None, flags: int = 0) -> None:
        self.threads.add(threading.get_ident())
        if self.blocks:
            self.release.wait()
        self.sent.append((response, flags))


def test_a_send_that_never_returns_holds_up_no_one_else() -> None:
    warnings: list[str] = []
    outbox = Outbox(warn=warnings.append, stuck_s=0.3)
    dead, alive = Sender(blocks=True), Sender()
    outbox.put(("llm", dead, "piece 1", 0))
    outbox.put(("llm", dead, "piece 2", 0))
    for n in range(5):
        outbox.put(("llm", alive, f"answer {n}", 0))
    outbox.put(("llm", alive, "last", 2))
    try:
        for _ in range(100):  # up to 5 s: the watch gives up on the dead send after 0.3 s
            if len(alive.sent) == 6:
                break
            threading.Event().wait(0.05)
        assert [r for r, _ in alive.sent] == [f"answer {n}" for n in range(5)] + ["last"]
        assert outbox.gave_up(dead) and not outbox.gave_up(alive)
        assert dead.sent == []  # piece 2 was dropped: its requester takes nothing more
        assert any("blocked" in w for w in warnings)
    finally:
        dead.release.set()
        outbox.close()


def test_sends_go_out_in_order_on_one_thread() -> None:
    outbox, sender = Outbox(stuck_s=5.0), Sender()
    for n in range(50):
        outbox.put(("llm", sender, n, 0))
    outbox.close()
    assert [r for r, _ in sender.sent] == list(range(50)) and len(sender.threads) == 1
