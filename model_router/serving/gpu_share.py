"""vLLM's `gpu_memory_utilization` for one model, from the registry's GPU memory and the GPU's total.

vLLM takes its share of the GPU as a fraction of the card's total memory (weights, activations and
KV cache together). A fraction fixed in model.json assumes one card size: on a smaller card the
model gets less than its weights, on a larger one it takes memory the router budgets for other
models. The registry states what each model needs in MB (`gpu_memory_mb`); the fraction follows from
it and the total that NVML reports, so the same files serve on 40, 80 and 141 GB cards.
"""
from __future__ import annotations

import math

# Rounded down to this many decimals: the share never exceeds what the registry grants.
DECIMALS = 3


def gpu_memory_utilization(model: str, model_gpu_mb: float, gpu_total_mb: float) -> float:
    """The fraction of the GPU's total memory that `model` may take, rounded down."""
    if gpu_total_mb <= 0:
        raise ValueError(f"gpu_total_mb={gpu_total_mb!r} for model {model!r}: the GPU's total memory must be > 0 MB")
    if model_gpu_mb <= 0:
        raise ValueError(f"gpu_memory_mb={model_gpu_mb!r} for model {model!r}: a vLLM model must state its GPU "
                         "memory in the registry (> 0 MB)")
    if model_gpu_mb > gpu_total_mb:
        raise ValueError(f"gpu_memory_mb={model_gpu_mb:.0f} for model {model!r}: more than this GPU's "
                         f"{gpu_total_mb:.0f} MB; allowed: at most the GPU's total")
    scale = 10**DECIMALS
    return math.floor(model_gpu_mb / gpu_total_mb * scale) / scale
