"""perf_analyzer over the router, the classifier and direct targets, from the committed input files.

Writes loadtests/perf/*_input.json (--input-data files, regenerated with --write-inputs) and runs
perf_analyzer on each model at the given concurrencies over gRPC (the decoupled router and LLM
with --streaming). Prints p50/p99 and throughput per model and concurrency.

    python scripts/bench_perf.py [--url host:http_port] [--concurrency 1 4] [--write-inputs]
"""
from __future__ import annotations

import argparse
import base64
import json
import struct
from pathlib import Path

from bench_classifier import write_input as write_classifier_input
from benchlib import perf_analyzer, server

PERF = Path(__file__).resolve().parent.parent / "loadtests" / "perf"
SHORT = json.dumps({"max_tokens": 16, "temperature": 0})
ROUTER_TEXTS = ["What is the capital of France?", "Name three primary colours.", "भारत की राजधानी क्या है?",
                "Read this aloud: 'Your table is ready.'", "Explain what a router does, in one sentence.",
                "यह वाक्य ज़ोर से पढ़कर सुनाओ: 'आपका दिन शुभ हो।'"]


def _bytes(value: str) -> dict:
    return {"content": [value], "shape": [1]}


def write_inputs() -> None:
    from client.samples import text_image

    PERF.mkdir(parents=True, exist_ok=True)
    write_classifier_input(PERF / "classifier_input.json")
    router = [{"text": _bytes(t), "options": _bytes(json.dumps({"sampling_parameters": json.loads(SHORT)}))}
              for t in ROUTER_TEXTS]
    llm = [{"text_input": _bytes(t), "stream": {"content": [True], "shape": [1]},
            "sampling_parameters": _bytes(SHORT), "exclude_input_in_output": {"content": [True], "shape": [1]}}
           for t in ROUTER_TEXTS if "aloud" not in t and "सुनाओ" not in t]
    tts = [{"text": _bytes(t), "language": _bytes(lang)} for t, lang in
           [("Your table is ready.", "en"), ("आपका दिन शुभ हो।", "hi"), ("காலை வணக்கம்", "ta")]]
    # perf_analyzer's b64 for BYTES is the serialized tensor: each element's 4-byte length, then it.
    pngs = [text_image(t, fmt="PNG") for t in ("OPEN DAILY FROM NINE", "PLATFORM 3")]
    ocr = [{"image": {"b64": base64.b64encode(struct.pack("<I", len(p)) + p).decode(), "shape": [1]},
            "language": _bytes("en")} for p in pngs]
    for name, data in (("router", router), ("llm", llm), ("tts", tts), ("ocr", ocr)):
        (PERF / f"{name}_input.json").write_text(json.dumps({"data": data}, ensure_ascii=False))


# model -> (input file, perf_analyzer extras)
RUNS = {
    "query_classifier": ("classifier_input.json", []),
    "router": ("router_input.json", ["--streaming"]),
    "smollm2_135m_instruct": ("llm_input.json", ["--streaming"]),
    "tts_espeak": ("tts_input.json", []),
    "ocr_tesseract": ("ocr_input.json", []),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--models", nargs="+", default=list(RUNS))
    ap.add_argument("--write-inputs", action="store_true", help="regenerate loadtests/perf/*_input.json")
    args = ap.parse_args()
    if args.write_inputs or not all((PERF / RUNS[m][0]).exists() for m in args.models):
        write_inputs()
    load = ["query_classifier", "router", "smollm2_135m_instruct", "tts_espeak", "ocr_tesseract"]
    with server(args.url, load) as (_, grpc, _srv):
        print(f"{'model':<24} {'conc':>4} {'p50 ms':>9} {'p99 ms':>9} {'infer/s':>9}")
        for model in args.models:
            data, extra = RUNS[model]
            for c in args.concurrency:
                r = perf_analyzer(model, grpc, c, PERF / data, "grpc", interval_ms=5000, extra=extra)
                print(f"{model:<24} {c:>4} {r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} {r['throughput']:>9.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
