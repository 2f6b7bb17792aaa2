"""Text generation with a Hugging Face causal LM: prompts in, text pieces out, continuously batched.

Kept free of Triton so that it can be run and tested in a plain Python process.
"""
from __future__ import annotations

import queue
from typing import Any, Callable, Iterator

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from model_router.contract.generation import MESSAGES, PROMPT, GenerateOutput
from model_router.contract.sampling import SamplingParams
from model_router.errors import InputError

from .batching import BatchEvents, ContinuousBatcher
from .constraints import Grammars, hf_tokenizer
from .kv_rows import TorchRows
from .sequence import Sequence, Sink


class TextGenerator:
    """One model serving many requests at once (batching.ContinuousBatcher)."""

    def __init__(self, model_path: str, device: str = "cpu", threads: int = 0, use_chat_template: bool = True,
                 max_input_tokens: int = 2048, dtype: str = "float32", max_batch_size: int = 8,
                 max_batch_tokens: int = 16384, gather_s: float = 0.0, events: BatchEvents | None = None,
                 stream_interval: int = 1, busy_rows: int = 0) -> None:
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype) if dtype != "auto" else "auto")
        self.model.to(device).eval()
        self.use_chat_template = use_chat_template and bool(getattr(self.tokenizer, "chat_template", None))
        self.max_input_tokens = max_input_tokens
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | {self.tokenizer.eos_token_id}
        vocab_size = self.model.get_output_embeddings().weight.shape[0]  # the logits' width
        self.grammars = Grammars(lambda: hf_tokenizer(self.tokenizer, vocab_size, eos - {None}), vocab_size, warm=True)
        self.batcher = ContinuousBatcher(TorchRows(self.model, device), self._decode, eos - {None}, max_batch_size,
                                         max_batch_tokens, gather_s, events, stream_interval, busy_rows)

    def encode(self, prompt: str, turns: list[dict[str, Any]] | None = None,
               tools: list[dict[str, Any]] | None = None) -> list[int]:
        """The token ids of the prompt, or of the conversation `turns` when given, through the chat
        template (with `tools`, for a template that writes them); InputError over max_input_tokens."""
        if self.use_chat_template:
            ids = self.tokenizer.apply_chat_template(turns or [{"role": "user", "content": prompt}], tools=tools,
                                                     add_generation_prompt=True, return_dict=True)["input_ids"]
        else:
            ids = self.tokenizer(prompt)["input_ids"]
        if len(ids) > self.max_input_tokens:
            raise InputError(MESSAGES if turns else PROMPT, f"the prompt, after the chat template and with "
                             f"any tools, is {len(ids)} tokens: over the limit of {self.max_input_tokens}",
                             self.max_input_tokens)
        return list(ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def submit(self, prompt: str, params: SamplingParams, sink: Sink, is_cancelled: Callable[[], bool] = lambda: False,
               turns: list[dict[str, Any]] | None = None, want_logprob: bool = False,
               tools: list[dict[str, Any]] | None = None) -> None:
        """Queue a request (a prompt, or a conversation); its pieces and its end go to `sink` from the
        batching thread. A request that cannot be served raises here, before it joins any batch."""
        spec = params.structured_outputs
        constraint = self.grammars.constraint(spec) if spec is not None else None
        self.batcher.submit(Sequence(self.encode(prompt, turns, tools), params, sink, is_cancelled, want_logprob,
                                     constraint))

    def generate(self, prompt: str, params: SamplingParams,
                 is_cancelled: Callable[[], bool] = lambda: False) -> Iterator[str]:
        """Yield text pieces as they are produced (stop strings cut off, as vLLM does)."""
        out = _QueueSink()
        self.submit(prompt, params, out, is_cancelled)
        while (item := out.items.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.batcher.close()


class _QueueSink:
    def __init__(self) -> None:
        self.items: queue.Queue[str | BaseException | None] = queue.Queue()

    def piece(self, out: GenerateOutput) -> None:
        self.items.put(out.text)

    def end(self, out: GenerateOutput, error: BaseException | None = None) -> None:
        if error is not None:
            self.items.put(error)
        self.items.put(None)
