"""Fitting the classifier's models (the server only loads what this writes)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..langid import NaiveBayes, nb_features
from ..linear import softmax


def _logits(W: np.ndarray, b: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.stack([v @ W[i] for i, v in rows]) + b


def train_linear(rows: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, n_classes: int, dim: int,
          epochs: int = 200, lr: float = 0.5, l2: float = 1e-4, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch Adam on the weighted cross-entropy; deterministic."""
    # Zero start: the loss is convex, and rows of unseen hashes stay zero (the artifact compresses).
    W = np.zeros((dim, n_classes), dtype=np.float32)
    b = np.zeros(n_classes, dtype=np.float32)
    Y = np.eye(n_classes, dtype=np.float32)[y]
    w = np.ones(len(rows), dtype=np.float32) if weights is None else weights.astype(np.float32)
    w = w / w.sum()
    all_idx = np.concatenate([i for i, _ in rows])
    all_val = np.concatenate([v for _, v in rows])
    row_of = np.repeat(np.arange(len(rows)), [len(i) for i, _ in rows])
    used = np.unique(all_idx)
    mW, vW = np.zeros_like(W), np.zeros_like(W)
    mb, vb = np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        P = softmax(_logits(W, b, rows))
        G = (P - Y) * w[:, None]
        gW = np.zeros_like(W)
        np.add.at(gW, all_idx, all_val[:, None] * G[row_of])
        gW[used] += l2 * W[used]
        gb = G.sum(axis=0)
        for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return W, b


def fit_naive_bayes(texts: list[str], labels: list[str], classes: tuple[str, str], alpha: float = 0.5) -> NaiveBayes:
    counts: list[Counter[str]] = [Counter(), Counter()]
    for t, y in zip(texts, labels):
        counts[classes.index(y)].update(nb_features(t))
    vocab = set(counts[0]) | set(counts[1])
    totals = np.array([sum(c.values()) for c in counts], dtype=np.float64) + alpha * (len(vocab) + 1)
    logprob = {f: np.log((np.array([counts[0][f], counts[1][f]]) + alpha) / totals) for f in vocab}
    # Equal priors: the pairs' balance in our data says nothing about the traffic's.
    return NaiveBayes(classes, logprob, np.log(alpha / totals), np.log(np.array([0.5, 0.5])))
