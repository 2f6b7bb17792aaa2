"""Does a finished gRPC stream leave the router behind? Rounds of three concurrent requests through
the OpenAI front's connection (one router worker: one answered, two turned away), then an unload of
the router, which must finish. `--cancel` cancels each stream after its last response instead of
closing it, which Triton 24.10's gRPC frontend does not survive (triton-inference-server/server#8078):
run it to see the race, and again on a newer Triton to see it gone.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from benchlib import server

from client import RouterClient
from openai_front import connection
from openai_front.connection import RouterConnection

LLM = "smollm2_135m_instruct"


class _Call:
    def inputs(self) -> dict[str, str]:
        return {"text": "What is the capital of France?",
                "options": json.dumps({"sampling_parameters": {"max_tokens": 8, "temperature": 0}})}


async def _one(conn: RouterConnection) -> str:
    try:
        return "/".join(type(event).__name__ for event in [e async for e in conn.events(_Call())])
    except Exception as exc:  # turned away: the error is the answer
        return type(exc).__name__


async def _round(url: str) -> list[str]:
    conn = RouterConnection(url)
    try:
        return await asyncio.gather(*(_one(conn) for _ in range(3)))
    finally:
        await conn.close()


def _state(client: RouterClient, model: str) -> str:
    return {m["name"]: m.get("state", "") for m in client.models()}.get(model, "UNAVAILABLE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cancel", action="store_true", help="cancel each stream after its last response")
    ap.add_argument("--unload-within", type=float, default=15.0, help="seconds an unload may take")
    args = ap.parse_args()
    if args.cancel:
        async def cancel_after_last(stream, done: asyncio.Event) -> None:
            done.set()
            stream.cancel()
        connection._close = cancel_after_last
    stuck = False
    with server(None, ["query_classifier", "router", LLM], env={"TMR_WORKERS": "1", "TMR_MAX_QUEUED": "0"}) as (
            http_url, grpc_url, _):
        admin = RouterClient(http_url)
        for i in range(args.rounds):
            if _state(admin, "router") != "READY":
                admin.load("router")
            answers = asyncio.run(_round(grpc_url))
            admin.unload("router")
            deadline = time.monotonic() + args.unload_within
            while _state(admin, "router") != "UNAVAILABLE" and time.monotonic() < deadline:
                time.sleep(0.1)
            state = _state(admin, "router")
            print(f"round {i + 1}: {answers} -> router {state}", flush=True)
            if state != "UNAVAILABLE":
                stuck = True
                break  # the router is held until the server stops
    print(f"{'cancelled' if args.cancel else 'closed'} streams: router stuck after {i + 1} rounds" if stuck
          else f"{'cancelled' if args.cancel else 'closed'} streams: {args.rounds} rounds, the router unloaded every time")
    return 1 if stuck else 0


if __name__ == "__main__":
    sys.exit(main())
