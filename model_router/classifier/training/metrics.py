"""Measures of a classifier's predictions, shared by scripts/eval_classifier.py and the tests."""
from __future__ import annotations

import numpy as np


def low_high_rate(truth: list[str], predicted: list[str]) -> float:
    """Share of queries whose complexity was confused across two levels (low <-> high)."""
    return sum({t, p} == {"low", "high"} for t, p in zip(truth, predicted)) / max(len(truth), 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """How far confidence is from accuracy, averaged over equal-width confidence bins weighted by size:
    0 when a confidence of 0.8 is right 80% of the time."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(confidence[which == k].mean() - correct[which == k].mean()) * (which == k).mean()
                     for k in range(bins) if (which == k).any()))
