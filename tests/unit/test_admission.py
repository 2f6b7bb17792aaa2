"""The router's admission limits, on a fake clock."""
from __future__ import annotations

import pytest

from model_router.serving.admission import Admission, Overloaded


def test_turns_away_beyond_running_plus_queued_and_lets_in_after_done() -> None:
    a = Admission(max_running=2, max_queued=1, max_wait_s=10, clock=lambda: 0.0)
    tickets = [a.admit() for _ in range(3)]
    with pytest.raises(Overloaded, match="2 requests running and 1 waiting"):
        a.admit()
    a.done()
    assert a.admit() and a.inside == 3 and len(tickets) == 3


def test_a_request_that_waited_too_long_is_turned_away_and_counted_out() -> None:
    now = [0.0]
    a = Admission(max_running=1, max_queued=5, max_wait_s=2, clock=lambda: now[0])
    fresh, stale = a.admit(), a.admit()
    a.start(fresh)
    now[0] = 3.0
    with pytest.raises(Overloaded, match="waited 3.0 s for a worker \\(limit 2 s\\)"):
        a.start(stale)
    assert a.inside == 1


def test_a_waiting_request_whose_client_left_frees_its_place_at_once() -> None:
    a = Admission(max_running=1, max_queued=1, max_wait_s=10, clock=lambda: 0.0)
    running, waiting = a.admit("r1"), a.admit("r2")
    assert a.start(running)
    with pytest.raises(Overloaded):
        a.admit("r3")
    assert a.drop_waiting(lambda request: request == "r2") == [waiting]
    assert a.inside == 1 and a.admit("r3")  # its place went to the next one
    assert a.start(waiting) is False  # its worker finds nothing to do
    assert a.drop_waiting(lambda request: request == "r1") == [] and a.inside == 2  # a running one stays
