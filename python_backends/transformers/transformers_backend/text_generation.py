"""Text generation with a Hugging Face causal LM, streamed token by token.

Kept free of Triton so that it can be run and tested in a plain Python process.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterator

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
    TextIteratorStreamer,
)

from model_router.errors import InputError
from model_router.sampling import SamplingParams


class _Cancelled(StoppingCriteria):
    def __init__(self, is_cancelled: Callable[[], bool]) -> None:
        self._is_cancelled = is_cancelled

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self._is_cancelled(), dtype=torch.bool, device=input_ids.device)


class TextGenerator:
    """One model, one request at a time (the caller serialises requests)."""

    def __init__(self, model_path: str, device: str = "cpu", threads: int = 0,
                 use_chat_template: bool = True, max_input_tokens: int = 2048, dtype: str = "float32") -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype) if dtype != "auto" else "auto")
        self.model.to(device).eval()
        self.use_chat_template = use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        self.max_input_tokens = max_input_tokens

    def encode(self, prompt: str) -> dict[str, torch.Tensor]:
        if self.use_chat_template:
            enc = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True,
                return_tensors="pt", return_dict=True)
        else:
            enc = self.tokenizer(prompt, return_tensors="pt")
        n = enc["input_ids"].shape[1]
        if n > self.max_input_tokens:
            raise InputError("text_input", f"{n} tokens exceeds the limit of {self.max_input_tokens}")
        return {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, prompt: str, params: SamplingParams,
                 is_cancelled: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Yield text pieces as they are produced; stop strings are cut off, as vLLM does."""
        enc = self.encode(prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs: dict = dict(**enc, max_new_tokens=params.max_tokens, streamer=streamer,
                            stopping_criteria=StoppingCriteriaList([_Cancelled(is_cancelled)]),
                            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        if params.greedy:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        if params.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = params.repetition_penalty
        if params.stop:
            kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    self.model.generate(**kwargs)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        yield from _cut_at_stop(streamer, params.stop)
        worker.join()
        if errors:
            raise errors[0]


def _cut_at_stop(pieces: Iterator[str], stops: tuple[str, ...]) -> Iterator[str]:
    """Pass pieces through, holding back just enough text to cut at the first stop string."""
    if not stops:
        yield from (p for p in pieces if p)
        return
    hold = max(len(s) for s in stops) - 1
    buf = ""
    for piece in pieces:
        buf += piece
        hits = [i for i in (buf.find(s) for s in stops) if i >= 0]
        if hits:
            if buf[:min(hits)]:
                yield buf[:min(hits)]
            for _ in pieces:  # drain so that generation can finish
                pass
            return
        if len(buf) > hold:
            yield buf[:len(buf) - hold]
            buf = buf[len(buf) - hold:]
    if buf:
        yield buf
