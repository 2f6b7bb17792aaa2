"""A batch's KV cache as rows that come and go: the cache operations continuous batching needs.

Rows are left-padded to one length: a row's real tokens sit at the right end, padding (masked out
by the attention mask) at the left. Works on transformers' DynamicCache (layers of
[batch, heads, length, head_dim] key and value tensors).
"""
from __future__ import annotations

import torch
from transformers import DynamicCache


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
