"""Language of a query: English or one of nine Indian languages, romanized Hindi included.

The script decides most languages outright. Two pairs share a script and need a learned
model: Devanagari (Hindi vs Marathi) and Latin (English vs romanized Hindi). For each we train
a multinomial naive Bayes over character n-grams and words (scripts/train_classifier.py).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .features import normalize, tokens

# Unicode blocks of the Indic scripts -> language (Devanagari and Latin are resolved by NB).
SCRIPT_BLOCKS = {
    (0x0900, 0x097F): "deva", (0x0980, 0x09FF): "bn", (0x0A00, 0x0A7F): "pa", (0x0A80, 0x0AFF): "gu",
    (0x0B80, 0x0BFF): "ta", (0x0C00, 0x0C7F): "te", (0x0C80, 0x0CFF): "kn", (0x0D00, 0x0D7F): "ml",
}
PAIRS = {"deva": ("hi", "mr"), "latin": ("en", "hi")}


def script_of(text: str) -> tuple[str, float]:
    """Dominant script among the letters, and its share of them."""
    counts: Counter[str] = Counter()
    for ch in text:
        cp = ord(ch)
        if cp < 0x0250:
            if ch.isalpha():
                counts["latin"] += 1
            continue
        for (lo, hi), name in SCRIPT_BLOCKS.items():
            if lo <= cp <= hi:
                counts[name] += 1
                break
    if not counts:
        return "latin", 0.0
    script, n = counts.most_common(1)[0]
    return script, n / sum(counts.values())


def nb_features(text: str) -> list[str]:
    out = []
    for w in tokens(text):
        out.append(f"w:{w}")
        padded = f" {w} "
        for n in (1, 2, 3, 4):
            out.extend(f"c{n}:{padded[i:i + n]}" for i in range(len(padded) - n + 1))
    return out


class NaiveBayes:
    """Two-class multinomial NB; log-probabilities kept as a dict for the features it saw
    (trained by classifier.training.fit.fit_naive_bayes)."""

    def __init__(self, labels: tuple[str, str], logprob: dict[str, np.ndarray], unseen: np.ndarray,
                 prior: np.ndarray) -> None:
        self.labels, self.logprob, self.unseen, self.prior = labels, logprob, unseen, prior

    def predict(self, text: str) -> tuple[str, float]:
        score = self.prior.copy()
        for f in nb_features(text):
            score += self.logprob.get(f, self.unseen)
        p = np.exp(score - score.max())
        p /= p.sum()
        k = int(p.argmax())
        return self.labels[k], float(p[k])

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        keys = sorted(self.logprob)
        return {f"{prefix}_keys": np.array(keys), f"{prefix}_logprob": np.stack([self.logprob[k] for k in keys]),
                f"{prefix}_unseen": self.unseen, f"{prefix}_prior": self.prior, f"{prefix}_labels": np.array(self.labels)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> "NaiveBayes":
        keys = arrays[f"{prefix}_keys"].tolist()
        lp = arrays[f"{prefix}_logprob"]
        return cls(tuple(arrays[f"{prefix}_labels"].tolist()), dict(zip(keys, lp)), arrays[f"{prefix}_unseen"],
                   arrays[f"{prefix}_prior"])


class LanguageIdentifier:
    def __init__(self, pair_models: dict[str, NaiveBayes]) -> None:
        self.pair_models = pair_models

    def identify(self, text: str) -> tuple[str, float]:
        script, share = script_of(normalize(text))
        if share == 0.0:  # no letters at all (emoji, digits): nothing to tell; English, unsure
            return "en", 0.0
        if script in self.pair_models:
            lang, p = self.pair_models[script].predict(text)
            return lang, p * (0.5 + 0.5 * share)
        return script, 0.5 + 0.5 * share
