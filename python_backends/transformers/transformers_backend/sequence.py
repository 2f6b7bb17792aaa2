"""One request in the continuous batch: its tokens, its per-request work at each step (token
choice, its structured output's mask, its text and stop strings) and what it reports to its sink."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch

from model_router.contract.generation import GenerateOutput
from model_router.contract.sampling import SamplingParams

from .constraints import Constraint
from .decoding import TextSoFar, TokenChooser


class Sink(Protocol):
    """Where a request's answer goes: pieces of text as they are final, then the end (with an error).
    Each carries the engine's counts: the tokens made since the previous call (its end-of-sequence
    token included, as vLLM counts it), the prompt's tokens and the cumulative log-probability when
    asked for; the end also its finish_reason."""

    def piece(self, out: GenerateOutput) -> None: ...
    def end(self, out: GenerateOutput, error: BaseException | None = None) -> None: ...


@dataclass(eq=False)
class Sequence:
    """One request in the batch."""

    prompt: list[int]
    params: SamplingParams
    sink: Sink
    is_cancelled: Callable[[], bool] = lambda: False
    want_logprob: bool = False  # keep the cumulative log-probability of the chosen tokens
    constraint: Constraint | None = None  # its structured output's matcher
    generated: list[int] = field(default_factory=list)  # the last one is not yet fed to the model
    length: int = 0  # real tokens in its KV row
    made: int = 0  # tokens chosen, an end-of-sequence token included
    reported: int = 0  # of them, those a piece has reported
    logprob: float = 0.0
    held: str = ""  # final text not yet sent: pieces of a busy batch carry several tokens
    finish_reason: str | None = None  # stop | length | abort, once it ends
    error: BaseException | None = None  # its own work failed: it ends with this error
    ended: bool = False

    def __post_init__(self) -> None:
        self.chooser = TokenChooser(self.params)
        self.text = TextSoFar(self.params.stop)

    def report(self, text: str, last: bool = False) -> GenerateOutput:
        """`text` with what is new since the last report: the tokens made since, the counts so far;
        the finish reason on the last report only, as vLLM sends it."""
        new, self.reported = self.made - self.reported, self.made
        return GenerateOutput(text, self.finish_reason if last else None, len(self.prompt), new,
                              self.logprob if self.want_logprob else None)

    @property
    def budget(self) -> int:
        """The most tokens its KV row can hold."""
        return len(self.prompt) + self.params.max_tokens

    def advance(self, logits: torch.Tensor, best: int, eos: set[int], decode: Callable[[list[int]], str],
                interval: int = 1) -> bool:
        """Choose the next token from this row's `logits` (`best`: the batch's argmax of them) and
        send what is final of the text, in pieces of up to `interval` tokens (the first at once);
        True when the request is done."""
        if self.is_cancelled():
            self.finish_reason = "abort"
            return True
        allowed = logits if self.constraint is None else self.constraint.mask(logits)  # this row's alone
        if self.constraint is not None and self.chooser.plain_greedy:
            best = int(allowed.argmax())
        token = best if self.chooser.plain_greedy else self.chooser.choose(allowed, self.prompt + self.generated)
        self.made += 1
        if self.want_logprob:  # of the model's own distribution, as vLLM reports it
            self.logprob += float(torch.log_softmax(logits.float(), dim=-1)[token])
        if token in eos and not self.params.ignore_eos:
            self.finish_reason = "stop"
        else:
            self.generated.append(token)
            if self.constraint is not None:
                self.constraint.accept(token)
            if len(self.generated) >= self.params.max_tokens:
                self.finish_reason = "length"
            elif self.constraint is not None and self.constraint.complete:
                self.finish_reason = "stop"  # the grammar allows nothing more
        piece = self.text.update(decode(self.generated), final=self.finish_reason is not None)
        if self.text.stopped:
            self.finish_reason = "stop"
        self.held += piece
        if self.held and (self.reported == 0 or self.made - self.reported >= interval or self.finish_reason):
            self.flush()
        return self.finish_reason is not None

    def flush(self) -> None:
        """Send the text held back, if any."""
        if self.held:
            held, self.held = self.held, ""
            self.sink.piece(self.report(held))
