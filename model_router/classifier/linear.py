"""Multinomial logistic regression over hashed sparse features, in numpy: prediction
(training is classifier.training.fit.train_linear)."""
from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def predict_proba(W: np.ndarray, b: np.ndarray, idx: np.ndarray, val: np.ndarray,
                  temperature: float = 1.0) -> np.ndarray:
    """Class probabilities; `temperature` (fitted on out-of-fold predictions) calibrates them."""
    return softmax((val @ W[idx] + b) / temperature)
