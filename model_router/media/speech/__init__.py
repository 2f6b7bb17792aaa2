"""Text to speech with espeak-ng (Debian; voices for English and the nine Indian languages),
with the viseme timeline of what is said."""
from __future__ import annotations

from dataclasses import dataclass

from ...contract.media import MAX_SPEECH_CHARS
from ...errors import InputError
from ..audio import pcm16_wav
from .espeak import Espeak
from .visemes import timeline

VOICES = {"en": "en-us", "hi": "hi", "mr": "mr", "ta": "ta", "te": "te", "bn": "bn", "gu": "gu", "kn": "kn",
          "ml": "ml", "pa": "pa"}


@dataclass(frozen=True)
class Speech:
    wav: bytes                 # 16-bit mono WAV
    sample_rate: int
    visemes: list[dict]        # lip-sync timeline covering the whole audio (speech.visemes)


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
    return Speech(pcm16_wav(syn.samples, syn.sample_rate), syn.sample_rate, timeline(syn.phonemes, total, syn.sample_rate))
