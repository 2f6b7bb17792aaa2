"""Run the Locust load test headless for a fixed time; write Locust's CSV and a summary.

Starts a CPU-default server (LLM, classifier and router loaded) unless --url names a running one;
after the run, probes that the server answers normally again (recovery).

    python scripts/loadtest.py --users 20 --duration 60 --out loadtests/results/u20
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_use_cases import cases
from benchlib import server

from client import RouterClient
from launcher import try_nice

REPO = Path(__file__).resolve().parent.parent
PROBE = ("What is the capital of France?", {"sampling_parameters": {"max_tokens": 16, "temperature": 0}})


def probe_s(grpc_url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    text = RouterClient(grpc_url, "grpc", timeout=120).route(*PROBE).text
    return time.perf_counter() - t0, text


def _ms(value: str) -> float:
    return float(value) if value not in ("", "N/A") else 0.0


def summarize(prefix: Path) -> dict:
    rows = list(csv.DictReader(open(f"{prefix}_stats.csv")))
    out = {}
    for r in rows:
        name = "total" if r["Name"] == "Aggregated" else r["Name"]
        if name == "rejected":
            name = f"rejected ({r['Type']})"
        out[name] = {"requests": int(r["Request Count"]), "failures": int(r["Failure Count"]),
                     "p50_ms": _ms(r["50%"]), "p99_ms": _ms(r["99%"]), "max_ms": _ms(r["Max Response Time"]),
                     "rps": round(float(r["Requests/s"] or 0), 2)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (gRPC on the next port); default: start one")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--spawn-rate", type=float, default=0, help="users started per second (default: all in 5 s)")
    ap.add_argument("--duration", type=int, default=60, help="seconds")
    ap.add_argument("--out", default="loadtests/results/run", help="folder for CSV and summary")
    ap.add_argument("--client-nice", type=int, default=-15, help="Locust's nice value (the server runs at -10)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "locust"
    with server(args.url, ["smollm2_135m_instruct", "query_classifier", "router"]) as (http_url, grpc_url, _srv):
        # Warm every path once (loads the step models), so that the run measures serving, not loading.
        warm = RouterClient(grpc_url, "grpc", timeout=300)
        spoken = warm.route("Read this aloud: 'Good morning.'", {}).audio
        for text, options, attachments in cases(spoken).values():
            warm.route(text, options, **attachments)
        before, _ = probe_s(grpc_url)
        cmd = [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests" / "locustfile.py"), "--headless",
               "-u", str(args.users), "-r", str(args.spawn_rate or max(args.users / 5, 1)), "-t", f"{args.duration}s",
               "--host", f"http://{http_url}", "--grpc-url", grpc_url, "--csv", str(prefix), "--only-summary",
               "--stop-timeout", "120", "--exit-code-on-error", "0"]
        env = {**os.environ, "TMR_GRPC_URL": grpc_url}
        # The load generator shares the server's 2 cores here: above the server's priority, so that
        # what it times is the server's answer, not its own wait for a core (where permitted).
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.duration + 600,
                              preexec_fn=lambda: try_nice(args.client_nice))
        (out / "locust.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not Path(f"{prefix}_stats.csv").exists():
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        time.sleep(2)
        after, text = probe_s(grpc_url)
    stats = summarize(prefix)
    rejections = [v for k, v in stats.items() if k.startswith("rejected")]
    rejected = {"requests": sum(v["requests"] for v in rejections),
                "p99_ms": max((v["p99_ms"] for v in rejections), default=0.0),
                "max_ms": max((v["max_ms"] for v in rejections), default=0.0)}
    served = {k: v for k, v in stats.items() if k != "total" and not k.startswith("rejected")}
    summary = {"users": args.users, "duration_s": args.duration, "by_name": stats,
               "served": sum(v["requests"] - v["failures"] for v in served.values()),
               "failures": sum(v["failures"] for v in served.values()),
               "rejected": rejected["requests"], "rejected_p99_ms": rejected["p99_ms"], "rejected_max_ms": rejected["max_ms"],
               "probe_before_s": round(before, 2), "probe_after_s": round(after, 2), "recovered": "Paris" in text}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = [f"# Locust: {args.users} users, {args.duration} s", "",
             "| name | requests | failures | p50 ms | p99 ms | max ms | req/s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {k} | {v['requests']} | {v['failures']} | {v['p50_ms']:.0f} | {v['p99_ms']:.0f} | {v['max_ms']:.0f} | {v['rps']} |"
              for k, v in stats.items()]
    lines += ["", f"served {summary['served']}, failed {summary['failures']}, rejected {summary['rejected']} "
                  f"(p99, the worse protocol's: {summary['rejected_p99_ms']:.0f} ms, max {summary['rejected_max_ms']:.0f} ms); "
                  f"probe before {before:.2f} s, after {after:.2f} s, recovered: {summary['recovered']}"]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if summary["recovered"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
