"""Constrained decoding (vLLM's structured outputs) for one request in the batch, with llguidance.

A request's `structured_outputs` becomes a grammar (a JSON schema, any JSON object, a regex, a
choice of strings, a Lark grammar) and a matcher of its own; at each step the matcher's token mask
sets the disallowed tokens of that request's row of logits to -inf, so constrained and free rows
share the decode step. A grammar that cannot be compiled is the client's error, raised before the
request joins a batch.

Why llguidance rather than xgrammar (both are vLLM's structured-output engines): its wheel has no
dependencies, while xgrammar's requires the `triton` GPU compiler package on Linux x86_64, which a
CPU server never uses.
"""
from __future__ import annotations

import json
import threading
from typing import Callable

import numpy as np
import torch

from model_router.contract.generation import SAMPLING
from model_router.contract.sampling import StructuredOutputs
from model_router.errors import InputError

FIELD = f"{SAMPLING}.structured_outputs"
# Compact JSON (no free whitespace): a small model cannot wander off into spaces and newlines.
JSON_OPTIONS = {"whitespace_flexible": False}


def grammar_of(spec: StructuredOutputs) -> str:
    """The llguidance grammar of a request's constraint."""
    from llguidance import LLMatcher

    if spec.json_schema is not None:
        return LLMatcher.grammar_from_json_schema(spec.json_schema, defaults=JSON_OPTIONS)
    if spec.json_object:
        return LLMatcher.grammar_from_json_schema({"type": "object"}, defaults=JSON_OPTIONS)
    if spec.regex is not None:
        return LLMatcher.grammar_from_regex(spec.regex)
    if spec.choice is not None:  # Lark string literals take JSON's escapes
        return LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in spec.choice))
    return LLMatcher.grammar_from_lark(spec.grammar or "")


class Constraint:
    """One request's matcher: masks its row's logits, follows the tokens chosen."""

    def __init__(self, matcher, vocab_size: int) -> None:
        self.matcher, self.vocab_size = matcher, vocab_size
        self.bits = torch.full(((vocab_size + 31) // 32,), -1, dtype=torch.int32)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """The row's logits with every token the grammar does not allow next at -inf."""
        self.matcher.unsafe_compute_mask_ptr(self.bits.data_ptr(), self.bits.numel() * 4)
        allowed = np.unpackbits(self.bits.numpy().view(np.uint8), bitorder="little")[:logits.shape[-1]]
        return logits.masked_fill(torch.from_numpy(allowed == 0).to(logits.device), float("-inf"))

    def accept(self, token: int) -> None:
        if not self.matcher.consume_token(token):
            raise RuntimeError(f"structured output: token {token} refused ({self.matcher.get_error()})")

    @property
    def complete(self) -> bool:
        """The grammar allows nothing more (only the end of the sequence)."""
        return self.matcher.is_stopped()


class Grammars:
    """Makes constraints for one model's tokenizer. Its llguidance tokenizer takes seconds to build
    (1-5 s for SmolLM2's 49k tokens on 2 cores): `warm` builds it on a thread of its own at once,
    so that neither the model's load nor its first constrained request waits for all of it."""

    def __init__(self, make_tokenizer: Callable[[], object], vocab_size: int, warm: bool = False) -> None:
        self._make, self.vocab_size = make_tokenizer, vocab_size
        self._tokenizer = None
        self._lock = threading.Lock()
        self._warming: threading.Thread | None = None
        if warm:
            self._warming = threading.Thread(target=lambda: self.tokenizer, name="grammar-tokenizer", daemon=True)
            self._warming.start()

    def settle(self) -> None:
        """Wait for the tokenizer being built: it reads the model's vocabulary, which must outlive it."""
        if self._warming is not None:
            self._warming.join()

    @property
    def tokenizer(self):
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._make()
            return self._tokenizer

    def constraint(self, spec: StructuredOutputs) -> Constraint:
        """A fresh matcher for `spec`; InputError naming its key when it cannot be compiled."""
        from llguidance import LLMatcher

        field = f"{FIELD}.{spec.kind}"
        try:
            grammar = grammar_of(spec)
        except ValueError as exc:
            raise InputError(field, _one_line(exc)) from None
        matcher = LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise InputError(field, _one_line(matcher.get_error()))
        return Constraint(matcher, self.vocab_size)


def _one_line(problem: object, limit: int = 400) -> str:
    return "cannot be compiled: " + " ".join(str(problem).split())[:limit]


def hf_tokenizer(tokenizer, vocab_size: int, eos: set[int]):
    """An llguidance tokenizer of a Hugging Face fast tokenizer, with the model's vocabulary size
    (its logits' width) and end-of-sequence tokens."""
    from llguidance.hf import from_tokenizer

    return from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=sorted(eos))
