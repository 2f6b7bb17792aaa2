"""Constrained decoding's cost on the CPU LLM, in one run: decode ms/token, constrained (a JSON schema)
against free, at concurrency 1 and 8; and the grammar compile time of each schema the tests use.

Both kinds of request go through the router (Triton's generate_stream route), greedy, `--tokens` new
tokens each. Free answers run to that length with `ignore_eos`; constrained answers follow a schema
that cannot be finished within it (a list of at least 40 facts), so both end by length and every
answer is the same size. Decode ms/token is (total - time to first token) / (tokens - 1), per answer,
the median over answers. The kinds take turns free, constrained, constrained, free at each level, so
that a machine whose load drifts weighs on both alike. Compile times: llguidance, the grammar engine of our backend
(python_backends/transformers/transformers_backend/constraints.py), with the model's tokenizer and
the backend's JSON options: schema -> grammar -> matcher -> first token mask, for every schema of
tests/data/structured_cases.json and the benchmark's own.

    python scripts/bench_structured.py [--url host:http_port] [--levels 1 8] [--requests 2] [--tokens 48]
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

from benchlib import server

from client import RouterClient
from launcher import DEFAULT_MODELS_DIR

LLM = "smollm2_135m_instruct"
CASES = Path(__file__).parents[1] / "tests" / "data" / "structured_cases.json"
FACTS = {"type": "object", "additionalProperties": False, "required": ["facts"], "properties": {"facts": {
    "type": "array", "minItems": 40, "items": {
        "type": "object", "additionalProperties": False, "required": ["fact", "year", "certain"],
        "properties": {"fact": {"type": "string", "maxLength": 80},
                       "year": {"type": "integer", "minimum": 0, "maximum": 2100},
                       "certain": {"type": "boolean"}}}}}}
TOPICS = ["the Moon", "Paris", "the Roman Empire", "volcanoes", "the printing press", "penguins", "the Nile",
          "electricity", "chess", "the Olympic Games", "coffee", "the Internet", "Mount Everest", "Mozart",
          "the Great Wall of China", "honey bees"]


def options(constrained: bool, tokens: int) -> dict:
    sampling = {"max_tokens": tokens, "temperature": 0}
    # The response cache off: every answer is generated, none replayed.
    opts = {"use_case": "agent", "model": LLM, "stream": True, "cache": "off", "sampling_parameters": sampling}
    if constrained:
        opts["response_format"] = {"type": "json_schema", "json_schema": {"name": "facts", "schema": FACTS}}
    else:
        sampling["ignore_eos"] = True
    return opts


def one(url: str, topic: str, constrained: bool, tokens: int) -> dict:
    first: list[float] = []
    t0 = time.perf_counter()
    routed = RouterClient(url, "http", timeout=600).route(
        f"List facts about {topic} as JSON.", options(constrained, tokens),
        on_piece=lambda _: first.append(time.perf_counter()) if not first else None)
    total = time.perf_counter() - t0
    n = routed.usage.completion_tokens if routed.usage else 0
    return {"ttft": (first or [total])[0] - t0, "total": total, "tokens": n, "finish": routed.finish_reason,
            "text": routed.text}


def level(url: str, concurrency: int, requests: int, constrained: bool, tokens: int) -> list[dict]:
    results: list[dict] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for r in range(requests):
            out = one(url, TOPICS[(i * requests + r) % len(TOPICS)], constrained, tokens)
            with lock:
                results.append(out)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def decode_ms(results: list[dict]) -> float:
    return 1000 * statistics.median((r["total"] - r["ttft"]) / max(r["tokens"] - 1, 1) for r in results)


def whole_ms(results: list[dict]) -> float:
    """ms per token of the whole answer, prefill included: it does not lean on when the first piece came."""
    return 1000 * statistics.median(r["total"] / max(r["tokens"], 1) for r in results)


def compile_times() -> list[dict]:
    """ms from a schema to its first token mask for the model's vocabulary, as the backend does it
    (llguidance; the tokenizer, built once per model, timed apart)."""
    import torch
    from llguidance import LLMatcher
    from llguidance.hf import from_tokenizer
    from transformers import AutoConfig, AutoTokenizer

    folder = DEFAULT_MODELS_DIR / "smollm2-135m-instruct"
    hf, vocab = AutoTokenizer.from_pretrained(folder), AutoConfig.from_pretrained(folder).vocab_size
    t0 = time.perf_counter()
    tokenizer = from_tokenizer(hf, n_vocab=vocab, eos_token=[hf.eos_token_id])
    rows = [{"schema": "(tokenizer, once per model)", "compile_ms": round((time.perf_counter() - t0) * 1000, 1)}]
    bits = torch.zeros(((vocab + 31) // 32,), dtype=torch.int32)
    schemas = [(c["name"], c["schema"]) for c in json.loads(CASES.read_text())] + [("facts (benchmark)", FACTS)]
    for name, schema in schemas:
        t0 = time.perf_counter()
        grammar = LLMatcher.grammar_from_json_schema(schema, defaults={"whitespace_flexible": False})
        matcher = LLMatcher(tokenizer, grammar, log_level=0)
        matcher.unsafe_compute_mask_ptr(bits.data_ptr(), bits.numel() * 4)
        if matcher.is_error():
            raise RuntimeError(f"{name}: {matcher.get_error()}")
        rows.append({"schema": name, "compile_ms": round((time.perf_counter() - t0) * 1000, 1)})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="a running server's HTTP host:port (default: start one)")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--requests", type=int, default=2, help="requests each client sends, per kind and turn")
    ap.add_argument("--tokens", type=int, default=48, help="new tokens per answer")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    report: dict = {"compile": compile_times(), "decode": []}
    for row in report["compile"]:
        print(f"compile {row['schema']:<28} {row['compile_ms']:>8.1f} ms")
    with server(args.url, [LLM, "query_classifier", "router"]) as (http_url, _, _srv):
        for constrained in (False, True):  # warm up both paths
            one(http_url, "tea", constrained, 8)
        print(f"{'conc':>4} {'free ms/tok':>11} {'JSON ms/tok':>11} {'overhead':>8}  {'whole: free':>11} "
              f"{'JSON':>6} {'overhead':>8}  lengths")
        for c in args.levels:
            runs = {False: [], True: []}
            for constrained in (False, True, True, False):
                runs[constrained] += level(http_url, c, args.requests, constrained, args.tokens)
            free, json_ = runs[False], runs[True]
            lengths = sorted({r["tokens"] for r in free + json_})
            f_ms, j_ms, f_all, j_all = decode_ms(free), decode_ms(json_), whole_ms(free), whole_ms(json_)
            report["decode"].append({"concurrency": c, "free_ms_per_token": round(f_ms, 1),
                                     "constrained_ms_per_token": round(j_ms, 1),
                                     "overhead": round(j_ms / f_ms - 1, 3),
                                     "whole_free_ms_per_token": round(f_all, 1),
                                     "whole_constrained_ms_per_token": round(j_all, 1),
                                     "whole_overhead": round(j_all / f_all - 1, 3), "token_counts": lengths,
                                     "finish_reasons": sorted({r["finish"] for r in free + json_})})
            print(f"{c:>4} {f_ms:>11.1f} {j_ms:>11.1f} {j_ms / f_ms - 1:>+8.1%}  {f_all:>11.1f} {j_all:>6.1f} "
                  f"{j_all / f_all - 1:>+8.1%}  {lengths}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
