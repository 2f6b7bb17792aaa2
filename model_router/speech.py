"""Text to speech with espeak-ng (Debian; voices for English and the nine Indian languages)."""
from __future__ import annotations

import io
import re
import wave
from dataclasses import dataclass

from .errors import InputError
from .espeak import Espeak
from .visemes import timeline

VOICES = {"en": "en-us", "hi": "hi", "mr": "mr", "ta": "ta", "te": "te", "bn": "bn", "gu": "gu", "kn": "kn",
          "ml": "ml", "pa": "pa"}
MAX_SPEECH_CHARS = 2000
_QUOTED = re.compile(r"'([^']{2,})'|\"([^\"]{2,})\"|‘([^’]{2,})’|“([^”]{2,})”")


def speech_text(query: str) -> str:
    """What to say: the quoted part of "read this aloud: 'Hello'", else what follows a colon,
    else the whole query."""
    quoted = ["".join(m.groups(default="")) for m in _QUOTED.finditer(query)]
    if quoted:
        return max(quoted, key=len).strip()
    if ":" in query:
        after = query.split(":", 1)[1].strip()
        if after:
            return after
    return query.strip()


@dataclass(frozen=True)
class Speech:
    wav: bytes                 # 16-bit mono WAV
    sample_rate: int
    visemes: list[dict]        # lip-sync timeline covering the whole audio (model_router.visemes)


def synthesize(text: str, language: str, words_per_minute: int = 160) -> Speech:
    """Speech of `text` in `language`'s voice, with the viseme timeline of what is said."""
    if language not in VOICES:
        raise InputError("language", f"{language!r} has no voice. Available: {sorted(VOICES)}")
    if not text.strip():
        raise InputError("text", "nothing to say")
    if len(text) > MAX_SPEECH_CHARS:
        raise InputError("text", f"{len(text)} characters exceeds the limit of {MAX_SPEECH_CHARS} for speech")
    syn = Espeak.get().synthesize(text, VOICES[language], words_per_minute)
    total = len(syn.samples) // 2
    if total == 0:
        raise RuntimeError("espeak-ng produced no audio")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(syn.sample_rate)
        w.writeframes(syn.samples)
    return Speech(buf.getvalue(), syn.sample_rate, timeline(syn.phonemes, total, syn.sample_rate))


def clip_for_speech(text: str, limit: int = MAX_SPEECH_CHARS) -> str:
    """`text` cut to `limit` characters at the last sentence (else word) boundary."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "), head.rfind("। "))
    return head[:cut + 1] if cut > limit // 2 else head.rsplit(" ", 1)[0]
