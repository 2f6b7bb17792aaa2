"""`python -m openai_front`: serve the OpenAI-compatible API in front of a running Triton."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import uvicorn

from model_router.registry import REGISTRY_FILE

from . import ADMIN_KEY_ENV, API_KEY_ENV, KEYS_ENV, RESPONSES_STORE_ENV
from .app import Settings, create_app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--triton-grpc", default="127.0.0.1:8001", help="Triton's gRPC host:port")
    ap.add_argument("--host", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=9000)
    ap.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                    help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; none: open)")
    ap.add_argument("--responses-store", default=os.environ.get(RESPONSES_STORE_ENV, "memory"),
                    help="where the Responses API keeps stored responses: memory (the newest 1000), memory:N, "
                         f"or a redis:// URL shared by every replica (default: ${RESPONSES_STORE_ENV} or memory)")
    ap.add_argument("--keys", default=os.environ.get(KEYS_ENV) or None,
                    help="tenant keys, their limits and usage: a SQLite file (one front) or a redis:// URL every "
                         f"replica shares (default: ${KEYS_ENV}; none: only --api-key)")
    ap.add_argument("--admin-key", default=os.environ.get(ADMIN_KEY_ENV) or None,
                    help=f"the admin API's key (/admin/keys, /admin/usage; default: ${ADMIN_KEY_ENV})")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # The router's own settings, read from the same environment as the router reads them.
    settings = Settings(triton_grpc=args.triton_grpc, api_key=args.api_key or None,
                        profile=os.environ.get("TMR_PROFILE", "cpu"),
                        registry=Path(os.environ.get("TMR_REGISTRY", REGISTRY_FILE)),
                        responses_store=args.responses_store, keys=args.keys, admin_key=args.admin_key)
    # A streamed answer still open at shutdown gets 5 s, then is cut (and its request cancelled).
    uvicorn.run(create_app(settings), host=args.host, port=args.port, timeout_graceful_shutdown=5)


if __name__ == "__main__":
    main()
