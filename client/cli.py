"""`tmr` command line: talk to a running Triton Model Router.

Examples:
    tmr health
    tmr models
    tmr generate "What is the capital of France?"
    tmr load smollm2_135m_instruct
    tmr --key KEY cache stats
    tmr feedback 3f2c...e9 0.8
    tmr keys create team-a --rpm 60      # tenant keys and usage: the OpenAI front's admin API
    tmr usage --key team-a
"""
from __future__ import annotations

import argparse
import json
import sys

from model_router.vocabulary import ATTACHMENT_KINDS

from . import admin_cli
from .api import InferenceServerException, RouterClient
from .wire import route_options

DEFAULT_MODEL = "smollm2_135m_instruct"


def _client(args: argparse.Namespace) -> RouterClient:
    url = args.url or ("localhost:8001" if args.protocol == "grpc" else "localhost:8000")
    # Triton's gRPC frontend reads a restricted protocol's header with the prefix "triton-grpc-protocol-".
    header = f"triton-grpc-protocol-{args.key_header}" if args.protocol == "grpc" else args.key_header
    headers = {header: args.key} if args.key else None
    return RouterClient(url, args.protocol, headers=headers)


def cmd_health(args: argparse.Namespace) -> int:
    c = _client(args)
    live, ready = c.live(), c.ready()
    print(f"live={live} ready={ready}")
    if not args.deep:
        return 0 if live and ready else 1
    report = c.deep_health()
    mem = report["memory"]
    print(f"router ready={report['ready']}  memory {mem['used_mb']:.0f} / {mem['budget_mb']:.0f} MB"
          + (f", GPU {mem['gpu_used_mb']:.0f} / {mem['gpu_budget_mb']:.0f} MB" if mem["gpu_budget_mb"] else ""))
    for name, m in sorted(report["models"].items()):
        state = "healthy" if m["healthy"] else m["recovering"] or (f"cooling {m['cooling_s']:.0f}s" if m["cooling_s"]
                                                                    else m["status"])
        print(f"  {name:<28} {m['status']:<9} {state}")
    cache = report.get("cache", {})
    if cache:
        state = "healthy" if cache["healthy"] else f"unavailable: {cache['last_error']}"
        held = f", {cache['bytes'] / 2**20:.1f} MB held" if cache.get("bytes") is not None else ""
        print(f"cache {cache.get('url') or cache['backend']}: {state}{held}")
    return 0 if live and ready and report["ready"] else 1


def cmd_models(args: argparse.Namespace) -> int:
    c = _client(args)
    rows = c.models()
    try:  # declared and measured memory, from the router when it runs
        managed = c.deep_health()["models"]
    except Exception:
        managed = {}
    width = max([len(r["name"]) for r in rows] + [5])
    print(f"{'model':<{width}}  {'state':<12} {'declared':>9} {'measured':>9}")
    for r in rows:
        m = managed.get(r["name"], {})
        declared = f"{m['declared_mb']:.0f} MB" if m else "-"
        measured = f"{m['measured_mb']:.0f} MB" if m.get("measured_mb") else "-"
        print(f"{r['name']:<{width}}  {r['state'] or '-':<12} {declared:>9} {measured:>9} {r['reason']}".rstrip())
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


def _attachments(args: argparse.Namespace) -> dict[str, bytes]:
    out = {}
    for kind in ATTACHMENT_KINDS:
        path = getattr(args, kind, None)
        if path:
            with open(path, "rb") as f:
                out[kind] = f.read()
    return out


def cmd_classify(args: argparse.Namespace) -> int:
    kinds = list(_attachments(args))
    print(json.dumps(_client(args).classify(args.text, kinds), ensure_ascii=False, indent=2))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Send a request through the router; stream the answer, then print the routing decision."""
    options = route_options({"max_tokens": args.max_tokens}, stream=args.protocol == "grpc" or args.stream,
                            use_case=args.use_case, language=args.language, model=args.model)

    def show(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    result = _client(args).route(args.text, options, on_piece=show, **_attachments(args))
    text, decision = result
    if not options.stream:
        sys.stdout.write(text)
    if result.audio is not None:
        with open(args.audio_out, "wb") as f:
            f.write(result.audio)
        sys.stdout.write(f"\n(speech: {len(result.audio)} bytes of WAV written to {args.audio_out}")
        if result.visemes:
            path = args.audio_out.rsplit(".", 1)[0] + ".visemes.json"
            with open(path, "w", encoding="utf-8") as f:
                json.dump(result.visemes, f, ensure_ascii=False)
            sys.stdout.write(f"; {len(result.visemes)} visemes to {path}")
        sys.stdout.write(")")
    sys.stdout.write("\n")
    if args.decision:
        print(json.dumps(decision, ensure_ascii=False, indent=2), file=sys.stderr)
    else:
        print(f"[{decision['use_case']}/{decision['language']} -> {decision['model']}, "
              f"{decision['total_ms']:.0f} ms, load {decision['load_ms']:.0f} ms, id {decision.get('id', '-')}]",
              file=sys.stderr)
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """The response cache's statistics, or clear it (with --key when the server has an admin key)."""
    report = _client(args).cache(args.action, args.key)
    if args.action == "clear":
        print(f"cleared {report['cleared']} cached answer(s); cache {report['backend']}")
    else:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Score an answer (its decision's id, as `tmr ask --decision` prints it) from 0 to 1."""
    got = _client(args).feedback(args.decision_id, args.score)
    print(f"recorded: {got['decision_id']} scored {got['score']:g}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    """Model states, then the router's own metrics from Triton's metrics port, readably."""
    c = _client(args)
    for r in c.models():
        print(f"{r['name']:<32} {r['state'] or 'not loaded'}")
    print()
    from .stats import format_metrics

    print(format_metrics(c.metrics(args.metrics_url)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tmr", description="Triton Model Router client")
    ap.add_argument("--url", help="host:port (default localhost:8000 for http, localhost:8001 for grpc)")
    ap.add_argument("--protocol", choices=["http", "grpc"], default="grpc")
    ap.add_argument("--key", help="the server's admin key: Triton's restricted APIs (model control) and `cache`")
    ap.add_argument("--key-header", default="admin-key")
    sub = ap.add_subparsers(dest="command", required=True)
    h = sub.add_parser("health", help="is the server live and ready (--deep: and every model the router manages)")
    h.add_argument("--deep", action="store_true", help="the router's own report: loaded, healthy, recovering, memory")
    h.set_defaults(func=cmd_health)
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
    c = sub.add_parser("classify", help="use case, language, complexity, modality of a query")
    c.add_argument("text")
    a = sub.add_parser("ask", help="send a request through the router (streams over gRPC)")
    a.add_argument("text")
    a.add_argument("--max-tokens", type=int, default=128)
    a.add_argument("--use-case")
    a.add_argument("--language")
    a.add_argument("--model", help="prefer this model")
    a.add_argument("--stream", action="store_true", help="stream over HTTP too")
    a.add_argument("--decision", action="store_true", help="print the whole routing decision")
    a.add_argument("--audio-out", default="answer.wav", help="where speech answers are written")
    for p in (c, a):
        for kind in ATTACHMENT_KINDS:
            p.add_argument(f"--{kind}", metavar="FILE")
    c.set_defaults(func=cmd_classify)
    a.set_defaults(func=cmd_ask)
    ca = sub.add_parser("cache", help="the response cache: stats, or clear it (--key: the server's admin key)")
    ca.add_argument("action", choices=["stats", "clear"])
    ca.set_defaults(func=cmd_cache)
    fb = sub.add_parser("feedback", help="score an answer the router served, from 0 (useless) to 1 (just right)")
    fb.add_argument("decision_id", help="the answer's decision id (`id` in its routing decision)")
    fb.add_argument("score", type=float)
    fb.set_defaults(func=cmd_feedback)
    st = sub.add_parser("stats", help="model states and routing metrics")
    st.add_argument("--metrics-url", default="localhost:8002")
    st.set_defaults(func=cmd_stats)
    admin_cli.add_parsers(sub)
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
