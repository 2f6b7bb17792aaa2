"""`tmr` command line: talk to a running Triton Model Router.

Examples:
    tmr health
    tmr models
    tmr generate "What is the capital of France?"
    tmr load smollm2_135m_instruct
"""
from __future__ import annotations

import argparse
import json
import sys

from .api import InferenceServerException, RouterClient

DEFAULT_MODEL = "smollm2_135m_instruct"


def _client(args: argparse.Namespace) -> RouterClient:
    url = args.url or ("localhost:8001" if args.protocol == "grpc" else "localhost:8000")
    headers = {args.key_header: args.key} if args.key else None
    return RouterClient(url, args.protocol, headers=headers)


def cmd_health(args: argparse.Namespace) -> int:
    c = _client(args)
    live, ready = c.live(), c.ready()
    print(f"live={live} ready={ready}")
    return 0 if live and ready else 1


def cmd_models(args: argparse.Namespace) -> int:
    rows = _client(args).models()
    width = max([len(r["name"]) for r in rows] + [5])
    for r in rows:
        print(f"{r['name']:<{width}}  {r['state'] or '-':<12} {r['reason']}".rstrip())
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    _client(args).load(args.model)
    print(f"{args.model}: loaded")
    return 0


def cmd_unload(args: argparse.Namespace) -> int:
    _client(args).unload(args.model)
    print(f"{args.model}: unload requested")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    sampling = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.seed is not None:
        sampling["seed"] = args.seed
    for piece in _client(args).stream(args.model, args.prompt, sampling):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tmr", description="Triton Model Router client")
    ap.add_argument("--url", help="host:port (default localhost:8000 for http, localhost:8001 for grpc)")
    ap.add_argument("--protocol", choices=["http", "grpc"], default="grpc")
    ap.add_argument("--key", help="key for Triton's restricted APIs (model control)")
    ap.add_argument("--key-header", default="admin-key")
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("health", help="is the server live and ready").set_defaults(func=cmd_health)
    sub.add_parser("models", help="models in the repository and their state").set_defaults(func=cmd_models)
    for name, func in (("load", cmd_load), ("unload", cmd_unload)):
        p = sub.add_parser(name, help=f"{name} a model through the model-control API")
        p.add_argument("model")
        p.set_defaults(func=func)
    g = sub.add_parser("generate", help="generate text (streams tokens over gRPC)")
    g.add_argument("prompt")
    g.add_argument("--model", default=DEFAULT_MODEL)
    g.add_argument("--max-tokens", type=int, default=128)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--seed", type=int)
    g.set_defaults(func=cmd_generate)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InferenceServerException as exc:
        print(f"error: {exc.message()}", file=sys.stderr)
        return 2
    except ConnectionError as exc:
        print(f"error: cannot reach the server: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
