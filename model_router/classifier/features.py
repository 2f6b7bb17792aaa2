"""Hashed sparse features of a query: words, word pairs, character n-grams, attachments.

Character n-grams carry meaning across the ten languages' scripts and spellings; crossing
words with the attachment kinds lets a linear model learn that "read" with an image is OCR
but "read" without one is speech.
"""
from __future__ import annotations

import re
import unicodedata
import zlib

import numpy as np

DIM = 1 << 18
# Split on spaces and punctuation only: \w would cut Indic words at their vowel signs.
_TOKEN = re.compile(r"[^\s.,!?;:'\"“”‘’()\[\]{}।॥\-–—/|*#<>=+]+")
_DIGITS = re.compile(r"\d")
_QUOTES = ("'", '"', "‘", "“", ":")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalize(text))


def _h(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (DIM - 1)


def _bucket(n: int, edges: tuple[int, ...]) -> int:
    return sum(n > e for e in edges)


def featurize(text: str, attachments: tuple[str, ...], char_ngrams: tuple[int, ...] = (2, 3, 4),
              cross: bool = True, shape: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, values) of the L2-normalised hashed feature vector."""
    words = tokens(text)
    att = sorted(set(attachments)) or ["none"]
    feats: dict[str, float] = {}
    for a in att:
        feats[f"a:{a}"] = 3.0
    feats["a:" + "+".join(att)] = 3.0
    for i, w in enumerate(words):
        feats[f"w:{w}"] = feats.get(f"w:{w}", 0.0) + 1.0
        if i:
            feats[f"b:{words[i - 1]} {w}"] = 1.0
        if cross:
            for a in att:
                feats[f"x:{a}|{w}"] = 1.0
        padded = f" {w} "
        for n in char_ngrams:
            for j in range(len(padded) - n + 1):
                key = f"c{n}:{padded[j:j + n]}"
                feats[key] = feats.get(key, 0.0) + 0.5
    if shape:
        feats[f"len:{_bucket(len(words), (4, 8, 14, 22, 32, 48))}"] = 2.0
        feats[f"clauses:{_bucket(text.count(',') + text.count(';') + text.count(' and '), (0, 1, 2, 4))}"] = 2.0
        feats[f"digits:{_bucket(len(_DIGITS.findall(text)), (0, 2, 6))}"] = 1.0
        feats[f"quoted:{int(any(q in text for q in _QUOTES))}"] = 1.0
    idx = np.fromiter((_h(k) for k in feats), dtype=np.int64, count=len(feats))
    val = np.fromiter(feats.values(), dtype=np.float32, count=len(feats))
    val /= max(float(np.linalg.norm(val)), 1e-6)
    return idx, val
