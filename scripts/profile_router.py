"""Where a routed request's time goes inside the router's stub: py-spy samples it while N client
threads route requests to a trivial target (tts_espeak), and this prints the functions that held
the samples (self time, and the share of the request path's main steps).

    pip install py-spy   # a profiling tool, not a dependency of the server
    python scripts/profile_router.py [--seconds 20] [--threads 8]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchlib import server

from client import RouterClient
from model_router.serving.stubs import stub_pids

STEPS = {"classify": "bls.py:classify", "decide": "policy.py:rank", "load lease": "loader.py:acquire",
         "target call": "bls.py:invoke", "decode request": "router.py:RouterRequest.of",
         "send responses": "heartbeat.py:_deliver", "cache lookup": "cached.py:lookup"}


def load(grpc_url: str, threads: int, seconds: float) -> int:
    done, stop = [0], time.monotonic() + seconds

    def worker() -> None:
        client = RouterClient(grpc_url, "grpc")
        while time.monotonic() < stop:
            client.route("Read this aloud: 'Good morning everyone.'", {"cache": "off", "use_case": "tts"})
            done[0] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return done[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (the CPU, not the waits)")
    args = ap.parse_args()
    with server(None, ["query_classifier", "router", "tts_espeak"]) as (_http, grpc_url, srv):
        load(grpc_url, args.threads, 3)  # warm
        pid = stub_pids(srv.proc.pid)["router"][0]
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "stacks.txt"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(pid),
                                    "--format", "raw", "--rate", "200",
                                    "--duration", str(args.seconds), "--nonblocking", "--output", str(out),
                                    *(["--gil"] if args.gil else [])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            answered = load(grpc_url, args.threads, args.seconds)
            spy.wait()
            stacks = [line.rsplit(" ", 1) for line in out.read_text().splitlines()
                      if " " in line and line.rsplit(" ", 1)[1].isdigit()]
    own, inside, total = Counter(), Counter(), 0
    for stack, count in stacks:
        frames, n = stack.split(";"), int(count)
        total += n
        own[frames[-1]] += n
        for step, marker in STEPS.items():
            if any(marker.split(":")[0] in f and marker.split(":")[1] in f for f in frames):
                inside[step] += n
    print(f"{answered} routed tts answers in {args.seconds} s with {args.threads} threads; {total} samples")
    print(f"request path steps (share of all samples{'' if args.gil else ', idle waits included'}):")
    for step, n in inside.most_common():
        print(f"  {step:16s} {n / total:6.1%}")
    print("top frames by self samples:")
    for frame, n in own.most_common(25):
        print(f"  {n / total:6.1%}  {frame[:110]}")


if __name__ == "__main__":
    main()
