"""Fitting the classifier's models (the server only loads what this writes)."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..langid import NaiveBayes, nb_features
from ..linear import softmax

Rows = list[tuple[np.ndarray, np.ndarray]]


class _Sparse:
    """Rows of hashed (index, value) features as one flat list of entries over the used columns only,
    so that products are np.bincount calls (no scipy here, and np.add.at is slow)."""

    def __init__(self, rows: Rows) -> None:
        self.n = len(rows)
        idx = np.concatenate([i for i, _ in rows])
        self.val = np.concatenate([v for _, v in rows]).astype(np.float64)
        self.row = np.repeat(np.arange(self.n), [len(i) for i, _ in rows])
        self.used, self.col = np.unique(idx, return_inverse=True)

    def dot(self, W: np.ndarray) -> np.ndarray:
        """X @ W for W over the used columns."""
        return np.stack([np.bincount(self.row, self.val * W[self.col, k], minlength=self.n)
                         for k in range(W.shape[1])], axis=1)

    def tdot(self, G: np.ndarray) -> np.ndarray:
        """X.T @ G."""
        return np.stack([np.bincount(self.col, self.val * G[self.row, k], minlength=len(self.used))
                         for k in range(G.shape[1])], axis=1)


def train_linear(rows: Rows, y: np.ndarray, n_classes: int, dim: int, epochs: int = 200, lr: float = 0.5,
                 l2: float = 1e-4, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Full-batch Adam on the weighted cross-entropy; deterministic. Returns W (dim x classes), b."""
    X = _Sparse(rows)
    # Zero start: the loss is convex, and rows of unseen hashes stay zero (the artifact compresses).
    W = np.zeros((len(X.used), n_classes))
    b = np.zeros(n_classes)
    Y = np.eye(n_classes)[y]
    w = np.ones(len(rows)) if weights is None else weights.astype(np.float64)
    w = w / w.sum()
    mW, vW, mb, vb = np.zeros_like(W), np.zeros_like(W), np.zeros_like(b), np.zeros_like(b)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        G = (softmax(X.dot(W) + b) - Y) * w[:, None]
        gW = X.tdot(G) + l2 * W
        gb = G.sum(axis=0)
        for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * g * g
            p -= lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    full = np.zeros((dim, n_classes), dtype=np.float32)
    full[X.used] = W
    return full, b.astype(np.float32)


def logits(W: np.ndarray, b: np.ndarray, rows: Rows) -> np.ndarray:
    return np.stack([v @ W[i] for i, v in rows]) + b


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The temperature T that minimises the held-out log-loss of softmax(z / T): calibration
    (Guo et al., 2017). z are out-of-fold logits, so the confidences mean what they say."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 300))
    nll = [-np.log(softmax(z / T)[np.arange(len(y)), y] + 1e-12).mean() for T in grid]
    return float(grid[int(np.argmin(nll))])


def fit_naive_bayes(texts: list[str], labels: list[str], classes: tuple[str, str], alpha: float = 0.5,
                    prior: tuple[float, float] = (0.5, 0.5)) -> NaiveBayes:
    """Two-class multinomial NB. `prior` should be the traffic's mix of the pair, not our corpus's
    (whose balance is our choice); it decides inputs too short to carry evidence, such as 'Hi'."""
    counts: list[Counter[str]] = [Counter(), Counter()]
    for t, y in zip(texts, labels):
        counts[classes.index(y)].update(nb_features(t))
    vocab = set(counts[0]) | set(counts[1])
    totals = np.array([sum(c.values()) for c in counts], dtype=np.float64) + alpha * (len(vocab) + 1)
    logprob = {f: np.log((np.array([counts[0][f], counts[1][f]]) + alpha) / totals) for f in vocab}
    return NaiveBayes(classes, logprob, np.log(alpha / totals), np.log(np.array(prior, dtype=np.float64)))
