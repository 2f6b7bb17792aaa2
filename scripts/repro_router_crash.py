"""Reproduce the router stub's crash under many concurrent streams (README, Faults): N clients
stream through the router without pause for M minutes; the run command's watchdog reloads a router
whose stub died, and this counts the deaths (the router's stub pid changing) and the requests that
failed, and prints the stacks the dying stub wrote (faulthandler) from Triton's log.
"""
from __future__ import annotations

import argparse
import threading
import time
from collections import Counter

from client import RouterClient
from launcher import TritonServer, keep_router_alive
from model_router.serving.stubs import stub_pids

LLM = "smollm2_135m_instruct"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=48)
    args = ap.parse_args()
    server = TritonServer(load=["query_classifier", "router", LLM]).start(timeout=300)
    stop = threading.Event()
    threading.Thread(target=keep_router_alive, args=(server, stop, 0.5), daemon=True).start()
    outcomes: Counter[str] = Counter()
    end = time.monotonic() + args.minutes * 60

    def client(i: int) -> None:
        rc = RouterClient(server.grpc_url, "grpc")
        while time.monotonic() < end:
            try:
                rc.route(f"Tell me a story about the number {i}.", {
                    "stream": True, "cache": "off", "sampling_parameters": {"max_tokens": args.max_tokens}})
                outcomes["answered"] += 1
            except Exception as exc:
                outcomes[f"error: {str(exc)[:90]}"] += 1
            i += args.streams

    pids: list[int] = []
    try:
        pool = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.streams)]
        for t in pool:
            t.start()
        while time.monotonic() < end:
            now = stub_pids(server.proc.pid).get("router", [])
            if now and (not pids or now[0] != pids[-1]):
                pids.append(now[0])
            time.sleep(0.5)
        for t in pool:
            t.join(120)
    finally:
        stop.set()
        server.stop(60)
    log = server.log_file.read_text(errors="replace")
    crashes = len(pids) - 1
    print(f"{args.streams} streams for {args.minutes:.0f} min: router stub deaths {crashes}, "
          f"faults in the log {log.count('Fatal Python error')}; {dict(outcomes)}")
    if "Fatal Python error" in log:
        start = log.index("Fatal Python error")
        print(log[start:start + 3000])


if __name__ == "__main__":
    main()
