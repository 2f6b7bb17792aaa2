"""Continuous (iteration-level) batching of text generation on one model.

Requests join the running batch at the next step: their prompts are prefilled together and their
KV rows appended to the batch's cache (a `Rows`: kv_rows.TorchRows for a transformers model, the
llama.cpp backend's LlamaRows for a GGUF one; the loop is the same). Every step then feeds each row its last token in
one forward pass. A request leaves as soon as it is done (its end-of-sequence token, max_tokens, a
stop string, or cancellation) and its row is dropped at once. Limits: `max_batch_size` rows, and
`max_batch_tokens` (the sum of each row's prompt + max_tokens, the most its cache can grow to);
requests beyond them wait in arrival order.

Each request learns what the engine knows, as the vLLM backend reports it: with every piece, the
tokens made since the previous one; at its end, why it ended (stop: its end-of-sequence token or a
stop string; length: max_tokens; abort: cancelled). A request whose own work fails (its token
choice, its text, its sink) fails alone; a prompt that fails the prefill is retried alone; only a
failed decode step, which leaves the shared cache unknown, fails every row in it.

Why our own loop rather than a kept one (measured on 2 CPU cores, SmolLM2-135M, 8 prompts x 32
tokens): transformers' ContinuousBatchingManager (`generate_batch`, paged attention) took 12.5 s,
no better than the same 8 one after another (14.5 s), and it takes one do_sample and seed for the
whole batch and no stop strings; a left-padded `generate` call took 3.3 s but cannot take a request
that arrives while it runs. This loop is `generate`'s own arithmetic (left padding, an attention
mask and position ids per row, a DynamicCache) with rows that come and go.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from .sequence import Sequence

log = logging.getLogger(__name__)


@dataclass
class BatchEvents:
    """Hooks for metrics, called on the batching thread; each defaults to doing nothing."""

    step: Callable[[int], None] = lambda rows: None          # one token made for each of `rows` requests
    ended: Callable[[str], None] = lambda result: None       # finished | cancelled | failed


class Rows(Protocol):
    """A model's side of the batch: the KV cache of the rows that decode together, in batch order.
    The loop adds rows with `prefill`, feeds them with `step` and drops them with `keep`."""

    def prefill(self, joining: list[Sequence]) -> torch.Tensor:
        """Run the prompts of `joining` and append their rows; the logits of their next tokens
        ([len(joining), vocab]). On an exception the batch's rows are as they were."""
    def step(self, rows: list[Sequence]) -> torch.Tensor:
        """Feed each row its last generated token at position `length`; the next logits ([rows, vocab])."""
    def keep(self, kept: list[int]) -> None:
        """Keep only the rows at these positions, in this order (the others' cache is freed)."""
    def clear(self) -> None:
        """Drop every row."""


class ContinuousBatcher:
    def __init__(self, rows: Rows, decode: Callable[[list[int]], str], eos: set[int], max_batch_size: int = 8,
                 max_batch_tokens: int = 16384, gather_s: float = 0.0, events: BatchEvents | None = None,
                 stream_interval: int = 1, busy_rows: int = 0) -> None:
        self.model_rows, self.decode, self.eos = rows, decode, eos
        self.events = events or BatchEvents()
        self.max_batch_size, self.max_batch_tokens, self.gather_s = max_batch_size, max_batch_tokens, gather_s
        # From `busy_rows` rows on, a streamed piece carries up to `stream_interval` tokens: each piece
        # costs CPU on its way (the backend's send, Triton, the router's relay, the client), which a
        # busy batch on a few cores takes from its decode steps. 0: every token is sent as it comes.
        self.stream_interval, self.busy_rows = stream_interval, busy_rows
        self._waiting: queue.Queue[Sequence | None] = queue.Queue()
        self._held: Sequence | None = None  # the next to join, waiting for room
        self._rows: list[Sequence] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="continuous-batching", daemon=True)
        self._thread.start()

    def submit(self, seq: Sequence) -> None:
        self._waiting.put(seq)

    def close(self, timeout: float = 30.0) -> None:
        self._stopped = True
        self._waiting.put(None)
        self._thread.join(timeout)

    @property
    def running(self) -> int:
        return len(self._rows)

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        with torch.inference_mode():  # the logits are torch tensors whichever engine made them
            while not self._stopped:
                joining = self._admit()
                try:
                    if joining:
                        self._prefill(joining)
                    if self._rows:
                        self._step()
                except Exception as exc:  # the shared cache is in an unknown state: its rows fail, the model serves on
                    log.exception("generation step failed")
                    self._fail_all(RuntimeError(f"a decode step of the batch failed: {exc!r}"), joining)
        left = [self._held] if self._held else []
        while (seq := self._next(block=False)) is not None:
            left.append(seq)
        self._fail_all(RuntimeError("the model is shutting down"), left)

    def _admit(self) -> list[Sequence]:
        """Requests that join now: as many waiting as fit, in order; blocks while there is no work."""
        joining: list[Sequence] = []
        tokens = sum(s.budget for s in self._rows)
        while len(self._rows) + len(joining) < self.max_batch_size:
            idle = not self._rows and not joining
            seq = self._held or self._next(block=idle)
            self._held = None
            if seq is None:
                break
            if seq.is_cancelled():
                self._end(seq)
                continue
            if tokens + seq.budget > self.max_batch_tokens and (self._rows or joining):
                self._held = seq  # no room yet: it goes first when rows leave
                break
            joining.append(seq)
            tokens += seq.budget
            if idle and self.gather_s:
                time.sleep(self.gather_s)  # let requests sent together be prefilled together
        return joining

    def _next(self, block: bool) -> Sequence | None:
        try:
            seq = self._waiting.get(block=block, timeout=None)
        except queue.Empty:
            return None
        if seq is None:  # close()
            self._stopped = True
        return seq

    # -- model calls ----------------------------------------------------------------------------------
    def _prefill(self, joining: list[Sequence]) -> None:
        """Run the new prompts together, then add their rows to the batch. A prefill that fails is
        tried again one prompt at a time, so that a prompt at fault fails alone."""
        try:
            logits = self.model_rows.prefill(joining)
        except Exception as exc:
            if len(joining) > 1:
                for s in joining:
                    self._prefill([s])
                return
            log.exception("prefill failed")
            self._end(joining[0], exc)
            return
        done = [False] * len(self._rows)
        self._rows.extend(joining)
        for s in joining:
            s.length = len(s.prompt)
        done.extend(self._advance(joining, logits))
        self.events.step(len(joining))
        self._settle(done)

    def _step(self) -> None:
        """Feed every row its last token; choose each row's next one."""
        logits = self.model_rows.step(self._rows)
        for s in self._rows:
            s.length += 1
        done = self._advance(self._rows, logits)
        self.events.step(len(self._rows))
        self._settle(done)

    # -- answers --------------------------------------------------------------------------------------
    def _advance(self, rows: list[Sequence], logits: torch.Tensor) -> list[bool]:
        """Choose each row's next token and send what is final of its text; True for the rows done.
        A row whose own work raises is done, with its error; the others go on."""
        best = logits.argmax(dim=-1).tolist()  # one pass for every plain greedy row
        interval = self.stream_interval if self.busy_rows and len(self._rows) >= self.busy_rows else 1
        done = []
        for s, row, top in zip(rows, logits, best):
            try:
                done.append(s.advance(row, top, self.eos, self.decode, interval))
            except Exception as exc:
                log.exception("a request failed in a generation step")
                s.error = exc
                done.append(True)
        return done

    def _settle(self, done: list[bool]) -> None:
        """End the rows that are done and drop them from the batch."""
        if not any(done):
            return
        for s, d in zip(self._rows, done):
            if d:
                self._end(s)
        keep = [i for i, d in enumerate(done) if not d]
        self._rows = [self._rows[i] for i in keep]
        if self._rows:
            self.model_rows.keep(keep)
        else:
            self.model_rows.clear()

    def _end(self, s: Sequence, error: BaseException | None = None) -> None:
        """Tell its sink it ended (once): its finish reason and the tokens not yet reported."""
        if s.ended:
            return
        s.ended, error = True, error or s.error
        s.finish_reason = s.finish_reason or "abort"
        self.events.ended("failed" if error else "cancelled" if s.is_cancelled() else "finished")
        try:
            if error is None:
                s.flush()  # text held back for a longer piece, when the batch was busy
            s.sink.end(s.report("", last=True), error)
        except Exception:  # its sink is broken: nothing more can be told to it
            log.exception("a request's end could not be sent")

    def _fail_all(self, error: BaseException, joining: list[Sequence]) -> None:
        for s in self._rows + [s for s in joining if s not in self._rows]:
            self._end(s, error)
        self._rows = []
        self.model_rows.clear()
