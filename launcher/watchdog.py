"""The run command's watchdog for the router's own stub."""
from __future__ import annotations

import logging
import threading

from model_router.serving.recovery import fresh_config
from model_router.serving.stubs import stub_pids
from model_router.triton.control import TritonModelControl

from .triton import TritonServer

log = logging.getLogger(__name__)


def keep_router_alive(server: TritonServer, stop: threading.Event, every_s: float = 2.0) -> None:
    """Watch the router's stub on a thread beside the server until `stop` is set or the server exits: the
    router heals the models it routes to, but nothing inside Triton restarts the router when its stub
    dies (24.10 still calls it READY, and its requests hang). Reload it with a config override, as the
    router does for its targets; requests that were inside the dead one are lost."""
    control = TritonModelControl(server.http_url, server.admin_headers)
    while not stop.wait(every_s) and server.returncode is None:
        try:
            if control.states().get("router") != "READY" or stub_pids(server.proc.pid).get("router"):
                continue
            log.warning("router: its stub died; reloading it")
            control.load("router", fresh_config(control.config("router")))
            log.info("router: back")
        except Exception as exc:  # the server stopping, or a load that failed: try again next round
            log.warning("router: could not reload it: %s", exc)
