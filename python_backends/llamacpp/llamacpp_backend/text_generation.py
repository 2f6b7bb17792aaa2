"""Text generation with a GGUF model in llama.cpp: prompts (or conversations, through the chat
template in the file) in, text pieces out, continuously batched by the same loop, sampling, stop
strings and structured outputs as the transformers backend (transformers_backend.batching): only
the model's side of the batch differs (llama_rows.LlamaRows).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from model_router.contract.generation import MESSAGES, PROMPT, SAMPLING
from model_router.contract.sampling import SamplingParams
from model_router.errors import InputError
from transformers_backend.batching import BatchEvents, ContinuousBatcher
from transformers_backend.constraints import Grammars
from transformers_backend.sequence import Sequence, Sink

from .gguf import GGUFModel, ModelFileError
from .llama_rows import LlamaRows


def _lltokenizer(model: GGUFModel) -> Any:
    """llguidance's tokenizer of the file's vocabulary. Its reader calls a llama-cpp-python function
    that warns it is deprecated, once per token (152k warnings for Qwen): silenced here."""
    from llguidance.llamacpp import lltokenizer_from_vocab

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return lltokenizer_from_vocab(model.vocab, model.n_vocab, eos_token=sorted(model.eog))


class LlamaTextGenerator:
    """One GGUF model serving many requests at once."""

    def __init__(self, model_path: str, threads: int = 0, use_chat_template: bool = True, max_input_tokens: int = 4096,
                 max_batch_size: int = 8, max_batch_tokens: int = 8192, gather_s: float = 0.0,
                 events: BatchEvents | None = None, stream_interval: int = 1, busy_rows: int = 0) -> None:
        self.model = GGUFModel(model_path, n_ctx=max_batch_tokens, n_seq=max_batch_size, threads=threads)
        if use_chat_template and not self.model.template:
            self.model.close()
            raise ModelFileError(f"{model_path} has no chat template (tokenizer.chat_template): set parameter "
                                 "chat_template=false to serve raw prompts")
        self.use_chat_template = use_chat_template
        self.max_input_tokens = min(max_input_tokens, max_batch_tokens - 1)
        self.grammars = Grammars(lambda: _lltokenizer(self.model), self.model.n_vocab, warm=True)
        self.rows = LlamaRows(self.model)
        self.batcher = ContinuousBatcher(self.rows, self.model.detokenize, self.model.eog, max_batch_size,
                                         max_batch_tokens, gather_s, events, stream_interval, busy_rows)

    def encode(self, prompt: str, turns: list[dict[str, Any]] | None = None,
               tools: list[dict[str, Any]] | None = None) -> list[int]:
        """The token ids of the prompt, or of the conversation `turns`, through the file's chat template
        (with `tools`, in the model's own format); InputError over max_input_tokens."""
        if self.use_chat_template:
            ids = self.model.tokenize(self.model.render(turns or [{"role": "user", "content": prompt}], tools))
        else:
            ids = self.model.tokenize(prompt, special=False)
        if len(ids) > self.max_input_tokens:
            raise InputError(MESSAGES if turns else PROMPT, f"the prompt, after the chat template and with "
                             f"any tools, is {len(ids)} tokens: over the limit of {self.max_input_tokens}",
                             self.max_input_tokens)
        return ids

    def submit(self, prompt: str, params: SamplingParams, sink: Sink, is_cancelled: Callable[[], bool] = lambda: False,
               turns: list[dict[str, Any]] | None = None, want_logprob: bool = False,
               tools: list[dict[str, Any]] | None = None) -> None:
        """Queue a request; its pieces and its end go to `sink` from the batching thread. A request
        that cannot be served raises here, before it joins any batch."""
        ids = self.encode(prompt, turns, tools)
        if len(ids) + params.max_tokens > self.batcher.max_batch_tokens:
            raise InputError(f"{SAMPLING}.max_tokens",
                             f"{len(ids)} prompt tokens + max_tokens {params.max_tokens} exceeds this model's "
                             f"{self.batcher.max_batch_tokens} tokens")
        spec = params.structured_outputs
        constraint = self.grammars.constraint(spec) if spec is not None else None
        self.batcher.submit(Sequence(ids, params, sink, is_cancelled, want_logprob, constraint))

    def close(self) -> None:
        self.batcher.close()
        self.grammars.settle()  # llguidance reads the vocabulary that model.close() frees
        self.rows.close()
        self.model.close()
