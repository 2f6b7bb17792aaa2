"""The router's metric recorder: what reaches its deliverer (each delivery a BLS call in the router)."""
from __future__ import annotations

import threading

from model_router.triton.metrics import RouterMetrics


class Deliveries:
    def __init__(self) -> None:
        self.batches: list[list] = []
        self.arrived = threading.Event()

    def __call__(self, ops: list) -> bool:
        if ops:
            self.batches.append(ops)
            self.arrived.set()
        return True

    def ops(self) -> list:
        return [op for batch in self.batches for op in batch]


def test_the_same_measurement_again_is_not_delivered_again() -> None:
    sink = Deliveries()
    metrics = RouterMetrics(sink)  # type: ignore[arg-type]  # any deliverer of op batches
    for used in (100.0, 100.0, 100.0, 120.0):
        metrics.memory_used(used, 0.0)
    metrics.close()
    host = [op[2] for op in sink.ops() if op[0] == "tmr_memory_used_mb" and op[3] == {"kind": "host"}]
    assert host == [100.0, 120.0], sink.ops()


def test_a_router_being_unloaded_delivers_nothing_more() -> None:
    """Triton 24.10 frees a BLS call queued while the stub finalizes after its shared memory: ops queued
    when the router closes its metrics are dropped, even behind a delivery still under way."""
    release = threading.Event()

    class Slow(Deliveries):
        def __call__(self, ops: list) -> bool:
            super().__call__(ops)
            return release.wait(30)  # a BLS call under way

    sink = Slow()
    metrics = RouterMetrics(sink)  # type: ignore[arg-type]
    metrics.decision("agent", "first")
    assert sink.arrived.wait(10)
    metrics.decision("agent", "queued behind it")
    closing = threading.Thread(target=metrics.close, kwargs={"deliver": False})
    closing.start()
    while not metrics._dropping:  # noqa: SLF001  # only to order the test's steps
        closing.join(0.01)
    release.set()
    closing.join(30)
    assert not closing.is_alive()
    assert [op[3]["model"] for op in sink.ops()] == ["first"], sink.ops()
