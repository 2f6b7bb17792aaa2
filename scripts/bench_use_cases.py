"""Latency of each of the six use cases through the router on the CPU default, end to end.

For each use case: the first request (which loads whatever step models it needs: OCR, frames,
speech) and then `--runs` warm requests; prints the median and the slowest warm run, and the
time each step took. The LLM is loaded before timing starts (its cold load is bench_router's).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchlib import server

from client import RouterClient
from client.samples import text_image, text_video

SHORT = {"max_tokens": 32, "temperature": 0}


def cases(speech: bytes) -> dict[str, tuple[str, dict, dict]]:
    """use case -> (text, options, attachments)."""
    return {
        "agent": ("What is the capital of France?", {"sampling_parameters": SHORT}, {}),
        "tts": ("Read this aloud: 'Good morning everyone, welcome to the show.'", {}, {}),
        "stt": ("Transcribe this audio.", {}, {"audio": speech}),
        "multimodal": ("What does this sign say?", {"sampling_parameters": SHORT},
                       {"image": text_image("OPEN DAILY FROM NINE", fmt="JPEG")}),
        "video": ("Summarize this video.", {"sampling_parameters": SHORT},
                  {"video": text_video(["WELCOME TO MUMBAI", "TRAIN LEAVES AT NINE"])}),
        "avatar": ("Hello! Please greet the visitors to our museum.", {"use_case": "avatar", "sampling_parameters": SHORT}, {}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    with server(args.url, ["smollm2_135m_instruct", "query_classifier", "router"]) as (_, grpc_url, _srv):
        client = RouterClient(grpc_url, "grpc")
        speech = client.route("Read this aloud: 'Good morning everyone, welcome to the show.'", {}).audio
        results = {}
        print(f"{'use case':<11} {'model':<24} {'first ms':>9} {'warm p50 ms':>12} {'warm max ms':>12}  steps (warm)")
        for use_case, (text, options, attachments) in cases(speech).items():
            times, decision = [], {}
            for _ in range(args.runs + 1):
                t0 = time.perf_counter()
                routed = client.route(text, options, **attachments)
                times.append((time.perf_counter() - t0) * 1000)
                decision = routed.decision
                if decision["use_case"] != use_case:
                    raise SystemExit(f"{use_case}: routed as {decision['use_case']}")
            warm = times[1:]
            steps = ", ".join(f"{s['step']} {s['ms']:.0f}" for s in decision["steps"]) or "-"
            results[use_case] = {"model": decision["model"], "first_ms": round(times[0]),
                                 "warm_p50_ms": round(statistics.median(warm)), "warm_max_ms": round(max(warm)),
                                 "steps": decision["steps"]}
            print(f"{use_case:<11} {decision['model']:<24} {times[0]:>9.0f} {statistics.median(warm):>12.0f} "
                  f"{max(warm):>12.0f}  {steps}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
