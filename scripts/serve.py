"""Run Triton Model Router: tritonserver on model_repository/, explicit model control, and the
OpenAI-compatible API beside it (openai_front, on --openai-port; --no-openai to skip it). Each answer's
decision and each client's feedback go to the decision log (--decision-log: results/decisions.jsonl,
or the --cache Redis when there is one).

Ctrl-C or SIGTERM stops the front, then the server and every stub process it started. When either
stops on its own, the other is stopped too: the run command serves both or neither.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from launcher import FrontProcess, TritonServer, keep_router_alive
from model_router import REPO_ROOT
from model_router.cache import CacheSettingError, ResponseCache, parse_cache_url
from model_router.errors import RegistryError
from model_router.settings import RouterSettings
from openai_front import API_KEY_ENV

DEFAULT_LOAD = ["query_classifier", "router", "smollm2_135m_instruct"]
DEFAULT_DECISION_LOG = REPO_ROOT / "results" / "decisions.jsonl"


def decision_log(given: str | None, cache: str) -> str:
    """The log the router writes: the one given (--decision-log, else $TMR_DECISION_LOG), else the cache's
    Redis, shared by every replica like the cache, else a file under results/."""
    if given and (given.strip().lower() == "off" or "://" in given):
        return given
    if given:  # a path: the router resolves nothing against our working directory
        return str(Path(given).expanduser().resolve())
    return cache if parse_cache_url(cache).backend == "redis" else str(DEFAULT_DECISION_LOG)


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
    ap.add_argument("--cache", default=os.environ.get("TMR_CACHE_URL", "memory"), metavar="URL",
                    help="the response cache: memory (in-process, the default), off, or redis://HOST:PORT/DB "
                         "shared by every replica (default: $TMR_CACHE_URL)")
    ap.add_argument("--decision-log", default=os.environ.get("TMR_DECISION_LOG"), metavar="PATH|URL",
                    help="where each answer's decision and each client's feedback go: a JSONL file, "
                         "redis://HOST:PORT/DB, or off (default: $TMR_DECISION_LOG, else the --cache Redis, "
                         f"else {DEFAULT_DECISION_LOG.relative_to(REPO_ROOT)})")
    ap.add_argument("--openai-port", type=int, default=9000, help="port of the OpenAI-compatible API")
    ap.add_argument("--no-openai", action="store_true", help="serve Triton alone, without the OpenAI-compatible API")
    ap.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                    help=f"require 'Authorization: Bearer KEY' on the OpenAI API (default: ${API_KEY_ENV}; none: open)")
    args = ap.parse_args()
    try:
        parse_cache_url(args.cache, "--cache")
    except CacheSettingError as exc:
        ap.error(str(exc))
    log_to = decision_log(args.decision_log, args.cache)
    try:
        RouterSettings.read({}, {"TMR_DECISION_LOG": log_to})
    except RegistryError as exc:
        ap.error(f"--decision-log: {str(exc).partition('): ')[2]}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # A Redis that does not answer is said now (model_router.cache warns); the router starts without it.
    ResponseCache(args.cache, semantic_threshold=None, setting="--cache")
    server = TritonServer(model_repository=args.model_repository, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, load=args.load, log_file=args.log_file,
                          admin_key=args.admin_key, env={"TMR_CACHE_URL": args.cache, "TMR_DECISION_LOG": log_to})
    stop = threading.Event()
    # The handler only flags: stopping inside it would deadlock on the Popen.wait it interrupted.
    signal.signal(signal.SIGINT, lambda signum, _frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop.set())
    server.start(timeout=300)
    threading.Thread(target=keep_router_alive, args=(server, stop), name="router-watchdog", daemon=True).start()
    front = None
    if not args.no_openai:
        front = FrontProcess(server.grpc_url, port=args.openai_port, api_key=args.api_key)
        try:
            front.start()
        except BaseException:
            server.stop()
            raise
    shown = parse_cache_url(log_to).shown if "://" in log_to else log_to  # a Redis URL without its password
    logging.info("ready: HTTP %s, gRPC %s, metrics :%s, %s (logs %s%s; decision log %s)", server.http_url,
                 server.grpc_url, server.metrics_port, f"OpenAI API {front.url}/v1" if front else "no OpenAI API",
                 server.log_file, f", {front.log_file}" if front else "", shown)
    while not stop.wait(0.5) and server.proc.poll() is None and (front is None or front.proc.poll() is None):
        pass
    if stop.is_set():
        logging.info("stopping")
    elif server.proc.poll() is not None:
        logging.error("tritonserver exited with %s; see %s", server.proc.returncode, server.log_file)
    else:
        logging.error("the OpenAI front exited with %s; see %s", front.proc.returncode, front.log_file)
    # The front first: its open streams end (their requests cancelled) while Triton still answers.
    front_rc = front.stop() if front is not None else 0
    rc = server.stop()
    return 0 if stop.is_set() else (rc or front_rc or 1)


if __name__ == "__main__":
    sys.exit(main())
