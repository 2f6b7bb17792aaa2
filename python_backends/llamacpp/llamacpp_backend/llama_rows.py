"""The batch's rows in one llama.cpp context (transformers_backend.batching.Rows): each request a
sequence id of its own in a KV cache they share, several sequences decoded in one llama_decode.

A prompt is decoded in chunks of at most `n_batch` tokens (prompts of several requests share a
chunk), the logits kept only for each prompt's last token; a step decodes one token per row. A row
that leaves has its cells freed at once and its sequence id goes back to the pool.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import llama_cpp
import numpy as np
import torch

from .gguf import GGUFModel

if TYPE_CHECKING:
    from transformers_backend.sequence import Sequence


class DecodeError(RuntimeError):
    """llama_decode failed (no room in the KV cache, or an error in the engine)."""


class LlamaRows:
    def __init__(self, model: GGUFModel) -> None:
        self.model = model
        self._batch = llama_cpp.llama_batch_init(model.n_batch, 0, 1)
        self._free = list(range(model.n_seq))[::-1]  # sequence ids not in use
        self._ids: list[int] = []  # the sequence id of each row, in batch order

    def prefill(self, joining: list[Sequence]) -> torch.Tensor:
        taken = [self._free.pop() for _ in joining]
        try:
            tokens = [(seq_id, pos, token, pos == len(s.prompt) - 1)
                      for s, seq_id in zip(joining, taken) for pos, token in enumerate(s.prompt)]
            logits = self._decode(tokens)
        except BaseException:
            for seq_id in taken:  # the batch's rows stay as they were
                llama_cpp.llama_memory_seq_rm(self.model.memory, seq_id, -1, -1)
            self._free.extend(reversed(taken))
            raise
        self._ids.extend(taken)
        return logits

    def step(self, rows: list[Sequence]) -> torch.Tensor:
        return self._decode([(seq_id, s.length, s.generated[-1], True) for s, seq_id in zip(rows, self._ids)])

    def keep(self, kept: list[int]) -> None:
        kept_ids = [self._ids[i] for i in kept]
        for seq_id in set(self._ids) - set(kept_ids):
            self._release(seq_id)
        self._ids = kept_ids

    def clear(self) -> None:
        for seq_id in self._ids:
            self._release(seq_id)
        self._ids = []
        llama_cpp.llama_memory_clear(self.model.memory, True)

    def close(self) -> None:
        llama_cpp.llama_batch_free(self._batch)

    def _release(self, seq_id: int) -> None:
        llama_cpp.llama_memory_seq_rm(self.model.memory, seq_id, -1, -1)
        self._free.append(seq_id)

    def _decode(self, tokens: list[tuple[int, int, int, bool]]) -> torch.Tensor:
        """Decode (sequence id, position, token, wants logits) in chunks; the logits asked for, in order."""
        out: list[np.ndarray] = []
        batch, n_vocab = self._batch, self.model.n_vocab
        for start in range(0, len(tokens), self.model.n_batch):
            chunk = tokens[start:start + self.model.n_batch]
            for i, (seq_id, pos, token, logits) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, 1
                batch.seq_id[i][0], batch.logits[i] = seq_id, logits
            batch.n_tokens = len(chunk)
            status = llama_cpp.llama_decode(self.model.ctx, batch)
            if status != 0:
                why = "no room in the KV cache" if status == 1 else f"status {status}"
                raise DecodeError(f"llama_decode failed: {why}")
            for i, (_, _, _, logits) in enumerate(chunk):
                if logits:
                    row = llama_cpp.llama_get_logits_ith(self.model.ctx, i)
                    out.append(np.ctypeslib.as_array(row, shape=(n_vocab,)).copy())
        return torch.from_numpy(np.stack(out))
