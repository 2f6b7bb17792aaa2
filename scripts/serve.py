"""Run Triton Model Router: tritonserver on model_repository/, explicit model control.

Ctrl-C or SIGTERM stops the server and every stub process it started.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from model_router.launcher import TritonServer  # noqa: E402

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
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            logging.info("signal %s: stopping tritonserver", signum)
            server.stop()
            sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    server.start(timeout=300)
    logging.info("ready: HTTP %s, gRPC %s, metrics :%s (log %s)", server.http_url, server.grpc_url,
                 server.metrics_port, server.log_file)
    server.proc.wait()
    return server.proc.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
