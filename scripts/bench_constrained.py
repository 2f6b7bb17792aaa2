"""Constrained decoding's cost in our backend's engine (in process, the CPU LLM's weights): decode
ms/token at concurrency 1 and 8, free vs under a JSON schema, and the grammar compile time per schema.

Decode ms/token of a request: (its last token's time - its first token's time) / (tokens - 1), so
the prompt's prefill is left out; at concurrency 8 the requests share decode steps. Free requests
make `--tokens` tokens (ignore_eos); constrained ones stop when their JSON is complete.

    python scripts/bench_constrained.py [--model .cache/models/smollm2-135m-instruct] [--tokens 48]
"""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from pathlib import Path

import torch

from launcher import DEFAULT_MODELS_DIR
from model_router.contract.sampling import SamplingParams, StructuredOutputs
from transformers_backend.constraints import hf_tokenizer
from transformers_backend.text_generation import TextGenerator

SCHEMAS = {
    "flat": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
             "required": ["name", "age"]},
    "enum+bool": {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]},
                                                   "ok": {"type": "boolean"}}, "required": ["colour", "ok"]},
    "nested+array": {"type": "object", "required": ["person", "tags"], "properties": {
        "person": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                                    "age": {"type": "integer", "minimum": 0, "maximum": 130}},
                   "required": ["name", "age"]},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 5}}},
    "story": {"type": "object", "properties": {"title": {"type": "string"}, "story": {"type": "string"}},
              "required": ["title", "story"]},
}
PROMPTS = ["Describe a person as JSON.", "Tell me a story about the sea, as JSON.", "Give me a city and its facts.",
           "Describe your favourite book.", "What is the weather like?", "Write about a cat.",
           "Tell me about rivers in India.", "Describe a day at school."]


class Timing:
    """A sink that keeps each piece's time and token count."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def piece(self, out) -> None:
        self.marks.append((time.perf_counter(), out.num_output_tokens or 0))

    def end(self, out, error=None) -> None:
        self.marks.append((time.perf_counter(), out.num_output_tokens or 0))
        self.error = error
        self.done.set()

    def ms_per_token(self) -> float | None:
        tokens = sum(n for _, n in self.marks)
        first = next((t for t, n in self.marks if n), None)
        return None if first is None or tokens < 3 else (self.marks[-1][0] - first) / (tokens - 1) * 1000


def run(gen: TextGenerator, concurrency: int, constrained: bool, tokens: int) -> float:
    """The median decode ms/token over `concurrency` requests sent together."""
    sinks = []
    for i in range(concurrency):
        spec = StructuredOutputs(json=SCHEMAS["story"]) if constrained else None
        params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=not constrained, structured_outputs=spec)
        sinks.append(Timing())
        gen.submit(PROMPTS[i % len(PROMPTS)], params, sinks[-1])
    for s in sinks:
        s.done.wait()
        if s.error:
            raise s.error
    return statistics.median(v for s in sinks if (v := s.ms_per_token()) is not None)


def mask_ms(gen: TextGenerator) -> float:
    """The mean time one constrained step adds to its row (the mask on the logits, the matcher's
    advance), replayed over a constrained answer's tokens: what a busy machine's noise hides above."""
    spec = StructuredOutputs(json=SCHEMAS["nested+array"])
    text = "".join(gen.generate(PROMPTS[0], SamplingParams(max_tokens=64, structured_outputs=spec)))
    tokens = gen.tokenizer(text, add_special_tokens=False)["input_ids"]
    constraint, logits = gen.grammars.constraint(spec), torch.zeros(gen.grammars.vocab_size)
    t0 = time.perf_counter()
    for token in tokens:
        constraint.mask(logits)
        constraint.accept(token)
    return (time.perf_counter() - t0) / len(tokens) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODELS_DIR / "smollm2-135m-instruct"))
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    gen = TextGenerator(args.model, threads=args.threads, max_batch_size=8)
    try:
        t0 = time.perf_counter()
        hf_tokenizer(gen.tokenizer, gen.grammars.vocab_size, gen.batcher.eos)  # what the engine builds at load
        built_ms = (time.perf_counter() - t0) * 1000
        print(f"llguidance tokenizer for {Path(args.model).name}: {built_ms:.0f} ms (once per model, built at load)")
        _ = gen.grammars.tokenizer  # the engine's own, built on its thread: compile times below leave it out
        for name, schema in SCHEMAS.items():
            t0 = time.perf_counter()
            gen.grammars.constraint(StructuredOutputs(json=schema))
            print(f"compile schema {name!r}: {(time.perf_counter() - t0) * 1000:.1f} ms")
        print(f"grammar work per token (mask + advance, measured alone): {mask_ms(gen):.2f} ms")
        run(gen, 1, False, 8)  # warm up
        for concurrency in (1, 8):
            free = run(gen, concurrency, False, args.tokens)
            bound = run(gen, concurrency, True, args.tokens)
            print(f"concurrency {concurrency}: decode {free:.1f} ms/token free, {bound:.1f} ms/token constrained "
                  f"({(bound / free - 1) * 100:+.0f}%)")
    finally:
        gen.close()


if __name__ == "__main__":
    main()
