"""Semantic matching: a cached answer serves a paraphrase, never a near miss.

A candidate must be close in the multilingual-e5 embedding (cosine >= threshold) *and* pass guards
that the embedding is blind to (it puts "10 km to miles" and "10 miles to km" at 0.996):
the same script, the same numbers and units in the same order, negated alike, and no content word
swapped for another ("capital of France" vs "of Germany"). scripts/eval_cache_semantic.py measures
them on tests/data/cache_pairs.jsonl and chose SEMANTIC_THRESHOLD there.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

import msgpack
import numpy as np

from .. import e5
from ..classifier.langid import script_of

Embed = Callable[[str], np.ndarray]  # text -> unit-length vector

SEMANTIC_THRESHOLD = 0.965  # chosen on tests/data/cache_pairs.jsonl: precision 1.000, recall 0.610
MAX_SEMANTIC_CHARS = 400  # longer queries match exactly or not at all: embedding costs ~0.6 ms a token
# A Latin word of 3 letters is content ("Goa"), an Indic one needs 4 code points (its vowel signs count);
# words that share their first STEM_CHARS code points are one word ("boil", "boiling").
CONTENT_CHARS = {"latin": 3, "other": 4}
STEM_CHARS = 4

# Negation by word, in English and the Indian languages we serve (romanized Hindi too).
NEGATION_WORDS = frozenset(unicodedata.normalize("NFC", w) for w in """
not no never none nor neither without cannot can't isn't aren't wasn't weren't don't doesn't didn't won't
wouldn't shouldn't couldn't mustn't haven't hasn't hadn't
nahi nahin mat na
नहीं नही मत न बिना नाही नको नये नकोस
না নয় নেই নি নাই
ਨਹੀਂ ਨਾ ਮਤ ਬਿਨਾਂ
નથી ના નહીં ન
""".split())
# Negation the Dravidian languages (and Marathi) fuse into the verb: matched inside words.
NEGATION_PARTS = tuple(unicodedata.normalize("NFC", p) for p in (
    "இல்லை", "கூடாது", "வேண்டாம்", "அல்ல", "లేదు", "కాదు", "కూడదు", "వద్దు", "ಇಲ್ಲ",
    "ಬಾರದು", "ಬೇಡ", "ಅಲ್ಲ", "ഇല്ല", "അല്ല", "രുത്", "വേണ്ട"))
# Units, spelled any way -> one name; compared in order ("km to miles" is not "miles to km").
UNITS = {name: unit for unit, names in {
    "km": "km kms kilometer kilometers kilometre kilometres किलोमीटर கிலோமீட்டர் కిలోమీటర్లు కిలోమీటర్ "
          "কিলোমিটার કિલોમીટર ಕಿಲೋಮೀಟರ್ കിലോമീറ്റർ ਕਿਲੋਮੀਟਰ",
    "mile": "mile miles mi मील मैल மைல் మైళ్ళు మైలు মাইল માઇલ ಮೈಲಿ മൈൽ ਮੀਲ",
    "m": "m meter meters metre metres मीटर மீட்டர் మీటర్ মিটার મીટર ಮೀಟರ್ മീറ്റർ ਮੀਟਰ",
    "cm": "cm centimeter centimeters centimetre centimetres सेंटीमीटर",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "ft": "ft foot feet फुट फ़ुट फीट",
    "in": "inch inches इंच",
    "yd": "yd yard yards गज",
    "kg": "kg kgs kilo kilos kilogram kilograms kilogramme किलो किलोग्राम",
    "g": "g gram grams gramme ग्राम",
    "lb": "lb lbs pound pounds पाउंड पौंड",
    "oz": "oz ounce ounces",
    "l": "l liter liters litre litres लीटर",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "gal": "gallon gallons गैलन",
    "c": "celsius °c सेल्सियस",
    "f": "fahrenheit °f फ़ारेनहाइट फारेनहाइट",
    "s": "second seconds sec secs सेकंड",
    "min": "minute minutes mins मिनट",
    "h": "hour hours hr hrs घंटे घंटा",
    "day": "day days दिन",
    "week": "week weeks हफ्ते सप्ताह",
    "month": "month months महीने महीना",
    "year": "year years साल वर्ष",
    "usd": "$ dollar dollars usd डॉलर",
    "eur": "€ euro euros eur यूरो",
    "inr": "₹ rupee rupees rs inr रुपये रुपए रुपया",
    "gbp": "£ gbp",
    "%": "% percent percentage प्रतिशत",
}.items() for name in names.split()}
_SYMBOLS = re.compile(r"[$€₹£%]|°[cf]")


def words(text: str) -> list[str]:
    """Runs of letters, marks (the vowel signs of Indic scripts) and digits; an inner apostrophe stays."""
    text = unicodedata.normalize("NFC", text).casefold()
    found, word = [], ""
    for i, ch in enumerate(text):
        inner = ch in "'’" and word and i + 1 < len(text) and unicodedata.category(text[i + 1])[0] in "LMN"
        if unicodedata.category(ch)[0] in "LMN" or inner:
            word += "'" if inner else ch
        elif word:
            found.append(word)
            word = ""
    return found + [word] if word else found


def numbers(text: str) -> tuple[str, ...]:
    """The numbers in order, in ASCII digits whatever the script (२ and ২ are 2)."""
    digits = "".join(str(unicodedata.digit(c)) if c.isdigit() else c if c in ".," else " " for c in text)
    return tuple(n.strip(".,").replace(",", "") for n in digits.split() if any(c.isdigit() for c in n))


def units(text: str) -> tuple[str, ...]:
    tokens = _SYMBOLS.findall(text.casefold()) + words(text)
    return tuple(UNITS[t] for t in sorted(tokens, key=lambda t: text.casefold().find(t)) if t in UNITS)


def negated(text: str) -> bool:
    found = words(text)
    text = unicodedata.normalize("NFC", text)
    return any(w in NEGATION_WORDS for w in found) or any(part in text for part in NEGATION_PARTS)


def _content(word: str) -> bool:
    latin = all(ord(c) < 0x0250 for c in word)
    return len(word) >= CONTENT_CHARS["latin" if latin else "other"]


def _novel(mine: list[str], theirs: list[str]) -> set[str]:
    """My content words with no word of theirs sharing their first STEM_CHARS code points."""
    stems = {w[:STEM_CHARS] for w in theirs}
    return {w for w in mine if _content(w) and w[:STEM_CHARS] not in stems}


def near_miss(a: str, b: str) -> str:
    """Why `b` must not share `a`'s answer whatever their embeddings say ("" when nothing forbids it)."""
    if script_of(a)[0] != script_of(b)[0]:
        return "script"
    if numbers(a) != numbers(b):
        return "numbers"
    if units(a) != units(b):
        return "units"
    if negated(a) != negated(b):
        return "negation"
    wa, wb = words(a), words(b)
    if _novel(wa, wb) and _novel(wb, wa):  # a content word replaced by another: another entity
        return "content"
    return ""


def pack_record(vector: np.ndarray, query: str) -> bytes:
    return msgpack.packb([np.asarray(vector, dtype=np.float16).tobytes(), query], use_bin_type=True)


def unpack_record(record: bytes) -> tuple[np.ndarray, str] | None:
    try:
        raw, query = msgpack.unpackb(record, raw=False)
        return np.frombuffer(raw, dtype=np.float16).astype(np.float32), query
    except (ValueError, TypeError, msgpack.UnpackException):
        return None


def best_match(vector: np.ndarray, query: str, records: dict[str, bytes],
               threshold: float) -> tuple[str, float] | None:
    """The closest record (key, cosine) at or above `threshold` that is no near miss of `query`."""
    ranked = []
    for key, record in records.items():
        unpacked = unpack_record(record)
        if unpacked is not None and unpacked[0].shape == vector.shape:
            ranked.append((float(unpacked[0] @ vector), key, unpacked[1]))
    for score, key, cached in sorted(ranked, reverse=True):
        if score < threshold:
            return None
        if not near_miss(query, cached):
            return key, score
    return None


def e5_embedder() -> Embed:
    """multilingual-e5-small over the whole query, unit length: the embedding model's own vector
    (model_router.e5, as /v1/embeddings gives it)."""
    model = e5.load()
    return lambda text: e5.embed(model, [text])[0]
