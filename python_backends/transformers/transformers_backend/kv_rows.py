"""A batch's KV cache as rows that come and go: the cache operations continuous batching needs.

Rows are left-padded to one length: a row's real tokens sit at the right end, padding (masked out
by the attention mask) at the left. Works on transformers' DynamicCache (layers of
[batch, heads, length, head_dim] key and value tensors).
"""
from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

if TYPE_CHECKING:
    from .sequence import Sequence


def pad_left(cache: DynamicCache, mask: torch.Tensor, n: int) -> torch.Tensor:
    """Grow every row by `n` padding positions on the left; returns the grown mask."""
    if n <= 0:
        return mask
    for layer in cache.layers:
        layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, n, 0))
        layer.values = torch.nn.functional.pad(layer.values, (0, 0, n, 0))
    return torch.nn.functional.pad(mask, (n, 0))


def join(cache: DynamicCache, mask: torch.Tensor, new: DynamicCache, new_mask: torch.Tensor) -> torch.Tensor:
    """Append the rows of `new` to `cache` (aligning their lengths); returns the joined mask."""
    length, new_length = mask.shape[1], new_mask.shape[1]
    mask = pad_left(cache, mask, new_length - length)
    new_mask = pad_left(new, new_mask, length - new_length)
    for layer, other in zip(cache.layers, new.layers):
        layer.keys = torch.cat([layer.keys, other.keys], dim=0)
        layer.values = torch.cat([layer.values, other.values], dim=0)
    return torch.cat([mask, new_mask], dim=0)


def keep(cache: DynamicCache, mask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Keep only `rows` (in that order), then drop the leading columns that are padding in all of
    them, so that a long request that left frees its memory; returns the new mask."""
    index = torch.tensor(rows, device=mask.device)
    mask = mask.index_select(0, index)
    real = mask.any(dim=0).nonzero()
    start = int(real[0]) if real.numel() else mask.shape[1]
    for layer in cache.layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, start:]
        layer.values = layer.values.index_select(0, index)[:, :, start:]
    return mask[:, start:]


class TorchRows:
    """A transformers model's rows (batching.Rows): one DynamicCache, left-padded, with its mask."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu") -> None:
        self.model, self.device = model, device
        # transformers 5 names the KV cache argument `cache`; 4.x (the NGC vLLM images') `past_key_values`.
        self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
        self._cache: DynamicCache | None = None
        self._mask = torch.zeros(0, 0, dtype=torch.long, device=device)

    def prefill(self, joining: list[Sequence]) -> torch.Tensor:
        width = max(len(s.prompt) for s in joining)
        ids = torch.zeros(len(joining), width, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(joining):
            ids[i, width - len(s.prompt):] = torch.tensor(s.prompt, device=self.device)
            mask[i, width - len(s.prompt):] = 1
        cache = DynamicCache(config=self.model.config)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                            logits_to_keep=1, **{self._cache_arg: cache}).logits[:, -1]
        if self._cache is None:
            self._cache, self._mask = cache, mask
        else:
            self._mask = join(self._cache, self._mask, cache, mask)
        return logits

    def step(self, rows: list[Sequence]) -> torch.Tensor:
        ids = torch.tensor([[s.generated[-1]] for s in rows], device=self.device)
        positions = torch.tensor([[s.length] for s in rows], device=self.device)
        self._mask = torch.nn.functional.pad(self._mask, (0, 1), value=1)
        return self.model(input_ids=ids, attention_mask=self._mask, position_ids=positions, use_cache=True,
                          **{self._cache_arg: self._cache}).logits[:, -1]

    def keep(self, kept: list[int]) -> None:
        self._mask = keep(self._cache, self._mask, kept)

    def clear(self) -> None:
        self._cache, self._mask = None, self._mask[:0, :0]
