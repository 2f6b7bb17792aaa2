"""Declared vs measured memory: serve all six use cases (which loads every CPU model: the LLM, OCR,
frames, Whisper, espeak), then print what the registry declares beside what each model's stub
processes were measured to hold (PSS from /proc, the router's own measurement; max seen).

    python scripts/bench_footprint.py
"""
from __future__ import annotations

from bench_use_cases import cases
from benchlib import server

from client import RouterClient


def main() -> int:
    with server(None, ["smollm2_135m_instruct", "query_classifier", "router"]) as (_, grpc_url, _srv):
        client = RouterClient(grpc_url, "grpc")
        speech = client.route("Read this aloud: 'Good morning everyone, welcome to the show.'", {}).audio
        for text, options, attachments in cases(speech).values():
            client.route(text, options, **attachments)
        client.route("Hi", {"model": "smollm2_135m_instruct_bf16"})
        report = client.deep_health()
    print(f"{'model':<28} {'declared MB':>11} {'measured MB':>11}  ratio")
    for name, m in sorted(report["models"].items()):
        if m["measured_mb"]:
            print(f"{name:<28} {m['declared_mb']:>11.0f} {m['measured_mb']:>11.0f}  {m['measured_mb'] / m['declared_mb']:.2f}")
    print(f"memory in use by the router's count: {report['memory']['used_mb']:.0f} MB of {report['memory']['budget_mb']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
