"""Per request in a batch: the next token from its logits (its own sampling parameters and seed),
and its text so far, released piece by piece and cut at its stop strings as vLLM does."""
from __future__ import annotations

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from model_router.contract.sampling import SamplingParams


class TokenChooser:
    """Greedy or sampled choice for one request; a seed makes its samples repeatable."""

    def __init__(self, params: SamplingParams) -> None:
        self.greedy = params.greedy
        steps: list = []
        if params.repetition_penalty != 1.0:
            steps.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
        if not params.greedy:
            steps.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                steps.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                steps.append(TopPLogitsWarper(params.top_p))
        self.steps = LogitsProcessorList(steps)
        self.generator = None
        if not params.greedy:
            self.generator = torch.Generator()
            if params.seed is not None:
                self.generator.manual_seed(params.seed)
            else:
                self.generator.seed()

    @property
    def plain_greedy(self) -> bool:
        """The best token as it is: the batch can take it for every such row at once."""
        return self.greedy and not self.steps

    def choose(self, logits: torch.Tensor, seen: list[int]) -> int:
        """The next token from one row of logits ([vocab]); `seen` holds the tokens so far."""
        scores = logits.float().unsqueeze(0)
        if self.steps:
            scores = self.steps(torch.tensor([seen], device=logits.device), scores)
        if self.greedy:
            return int(scores.argmax(dim=-1))
        probs = torch.softmax(scores, dim=-1).cpu()
        return int(torch.multinomial(probs, 1, generator=self.generator))


class TextSoFar:
    """A request's generated text, released as it becomes final.

    Held back: a trailing partial UTF-8 character (decoded as U+FFFD until its last byte comes) and,
    with stop strings, enough characters to cut at the first one that completes."""

    def __init__(self, stops: tuple[str, ...] = ()) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.sent = 0
        self.stopped = False

    def update(self, text: str, final: bool = False) -> str:
        """The new piece to send for the whole text so far; sets `stopped` when a stop string appeared."""
        end = len(text)
        hits = [i for i in (text.find(s, max(self.sent - self.hold, 0)) for s in self.stops) if i >= 0]
        if hits:
            end, self.stopped = min(hits), True
        elif final:  # a character cut by max_tokens never completes: leave its bytes out
            end = len(text.rstrip("\ufffd"))
        else:
            end = len(text.rstrip("\ufffd")) - self.hold
        piece = text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return piece
