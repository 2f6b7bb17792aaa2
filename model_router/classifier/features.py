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
# A quoted span opens after a space, colon or bracket and closes before punctuation or the end, so
# that apostrophes inside words ("I'm", "sister's") are not taken for quotes.
_QUOTED = re.compile(r"(?:^|(?<=[\s:(]))(['\"“‘])(.+?)['\"”’](?=[\s.,!?;:)।॥]|$)", re.S)
_SENTENCE_END = re.compile(r"[.?!।॥](?:\s|$)")
_LIST_SEP = re.compile(r"[,;،、]|\n\s*(?:[-*•]|\d+[.)])")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalize(text))


def split_payload(text: str) -> tuple[str, str]:
    """(instruction, payload): quoted text is what to say or read, not what to do; its length says
    little about how hard the request is."""
    payload = " ".join(m.group(2) for m in _QUOTED.finditer(text))
    return _QUOTED.sub(" ", text), payload


def _h(feature: str) -> int:
    return zlib.crc32(feature.encode("utf-8")) & (DIM - 1)


def _bucket(n: int, edges: tuple[int, ...]) -> int:
    return sum(n > e for e in edges)


def _shape(text: str, payload: str) -> dict[str, float]:
    """Structure of the instruction: length in words and characters (agglutinative scripts put one
    request in few long words), sentences, list separators, digits, and how long the payload is."""
    return {
        f"len:{_bucket(len(tokens(text)), (1, 4, 8, 14, 22, 32, 48))}": 2.0,
        f"chars:{_bucket(len(text.strip()), (12, 30, 60, 100, 160, 240))}": 2.0,
        f"sentences:{_bucket(len(_SENTENCE_END.findall(text.strip() + ' ')), (1, 2, 3))}": 1.0,
        f"clauses:{_bucket(len(_LIST_SEP.findall(text)) + text.count(' and '), (0, 1, 2, 4))}": 2.0,
        f"digits:{_bucket(len(_DIGITS.findall(text)), (0, 2, 6))}": 1.0,
        f"quoted:{int(any(q in text for q in _QUOTES))}": 1.0,
        f"payload:{_bucket(len(payload), (0, 40, 120))}": 1.0,
    }


def featurize(text: str, attachments: tuple[str, ...], char_ngrams: tuple[int, ...] = (2, 3, 4),
              cross: bool = True, shape: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Return (indices, values) of the L2-normalised hashed feature vector. With `shape` (the
    complexity head) the quoted payload is left out of the words and measured instead."""
    payload = ""
    if shape:
        text, payload = split_payload(text)
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
        feats.update(_shape(text, payload))
    idx = np.fromiter((_h(k) for k in feats), dtype=np.int64, count=len(feats))
    val = np.fromiter(feats.values(), dtype=np.float32, count=len(feats))
    val /= max(float(np.linalg.norm(val)), 1e-6)
    return idx, val
