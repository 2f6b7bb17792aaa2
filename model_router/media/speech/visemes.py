"""Phonemes (IPA, from espeak-ng) -> a viseme timeline for lip-sync.

Visemes are the 15 of the Oculus/Meta lip-sync set, which avatar renderers (Ready Player Me,
three.js and Unity rigs) take directly: sil PP FF TH DD kk CH SS nn RR aa E I O U.
"""
from __future__ import annotations

VISEMES = ("sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U")

# Longest IPA prefix first; the rest of a phoneme (length marks, diacritics) does not change the mouth.
_PREFIXES: tuple[tuple[str, str], ...] = tuple(sorted({
    **dict.fromkeys(["p", "b", "m", "ɓ"], "PP"),
    **dict.fromkeys(["f", "v", "ʋ", "ɸ", "β"], "FF"),
    **dict.fromkeys(["θ", "ð"], "TH"),
    **dict.fromkeys(["t", "d", "ʈ", "ɖ", "ɗ", "ɾ", "ɽ"], "DD"),
    **dict.fromkeys(["k", "g", "ɡ", "ŋ", "x", "ɣ", "q", "h", "ɦ", "ʔ"], "kk"),
    **dict.fromkeys(["tʃ", "dʒ", "ʃ", "ʒ", "ʂ", "ʐ", "ɕ", "ʑ", "c", "ɟ", "j", "ç"], "CH"),
    **dict.fromkeys(["s", "z", "ts", "dz"], "SS"),
    **dict.fromkeys(["n", "ɳ", "ɲ", "l", "ɭ", "ʎ", "ɫ"], "nn"),
    **dict.fromkeys(["r", "ɹ", "ɻ", "ʁ", "ʀ", "ɚ", "ɝ"], "RR"),
    **dict.fromkeys(["a", "ɑ", "æ", "ʌ", "ɐ", "ɒ", "ə"], "aa"),
    **dict.fromkeys(["e", "ɛ", "ɜ", "ø", "œ"], "E"),
    **dict.fromkeys(["i", "ɪ", "y", "ɨ"], "I"),
    **dict.fromkeys(["o", "ɔ", "ɤ"], "O"),
    **dict.fromkeys(["u", "ʊ", "w", "ɯ", "ʉ"], "U"),
}.items(), key=lambda kv: -len(kv[0])))


def viseme(phoneme: str) -> str:
    """The viseme for one IPA phoneme; stress marks and unknown symbols fall through to the next char."""
    p = phoneme.lstrip("ˈˌ'_:")
    if not p:
        return "sil"
    for prefix, v in _PREFIXES:
        if p.startswith(prefix):
            return v
    return "sil"


def timeline(phonemes: list[tuple[int, str]], total_samples: int, sample_rate: int) -> list[dict]:
    """[{start, end, phoneme, viseme}] in seconds, covering 0 .. the audio's end without gaps.

    Each phoneme lasts until the next one starts; a leading pause is silence; runs of the same
    viseme are merged, since a renderer would hold the mouth still through them anyway.
    """
    marks = [(0, "")] + sorted((min(max(s, 0), total_samples), p) for s, p in phonemes)
    out: list[dict] = []
    for (start, ph), (end, _) in zip(marks, marks[1:] + [(total_samples, "")]):
        if end <= start:
            continue
        v = viseme(ph)
        if out and out[-1]["viseme"] == v:
            out[-1]["end_sample"] = end
            out[-1]["phoneme"] += ph
            continue
        out.append({"start_sample": start, "end_sample": end, "phoneme": ph, "viseme": v})
    return [{"start": round(e["start_sample"] / sample_rate, 4), "end": round(e["end_sample"] / sample_rate, 4),
             "phoneme": e["phoneme"], "viseme": e["viseme"]} for e in out]
