"""Run Triton Model Router: tritonserver on model_repository/, explicit model control.

Ctrl-C or SIGTERM stops the server and every stub process it started.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from launcher import TritonServer

DEFAULT_LOAD = ["query_classifier", "router", "smollm2_135m_instruct"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model-repository", type=Path, default=TritonServer.model_repository)
    ap.add_argument("--http-port", type=int, default=8000)
    ap.add_argument("--grpc-port", type=int, default=8001)
    ap.add_argument("--metrics-port", type=int, default=8002)
    ap.add_argument("--load", nargs="*", default=DEFAULT_LOAD, help="models to load after startup")
    ap.add_argument("--log-file", type=Path, default=None)
    ap.add_argument("--admin-key", default=os.environ.get("TMR_ADMIN_KEY"),
                    help="require this key (header admin-key) for model control (default: $TMR_ADMIN_KEY)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    server = TritonServer(model_repository=args.model_repository, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, load=args.load, log_file=args.log_file,
                          admin_key=args.admin_key)
    stop = threading.Event()
    # The handler only flags: stopping inside it would deadlock on the Popen.wait it interrupted.
    signal.signal(signal.SIGINT, lambda signum, _frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.set())
    server.start(timeout=300)
    logging.info("ready: HTTP %s, gRPC %s, metrics :%s (log %s)", server.http_url, server.grpc_url,
                 server.metrics_port, server.log_file)
    while not stop.wait(0.5) and server.proc.poll() is None:
        pass
    if stop.is_set():
        logging.info("stopping tritonserver")
    rc = server.stop()
    return 0 if stop.is_set() else (rc or 0)


if __name__ == "__main__":
    sys.exit(main())
