"""Text to speech with espeak-ng (Debian; voices for English and the nine Indian languages)."""
from __future__ import annotations

import re
import shutil
import struct
import subprocess

from .errors import InputError

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


def synthesize(text: str, language: str, words_per_minute: int = 160, timeout_s: float = 60.0) -> bytes:
    """WAV bytes (22,050 Hz mono) of `text` in `language`'s voice."""
    if language not in VOICES:
        raise InputError("language", f"{language!r} has no voice. Available: {sorted(VOICES)}")
    if not text.strip():
        raise InputError("text", "nothing to say")
    if len(text) > MAX_SPEECH_CHARS:
        raise InputError("text", f"{len(text)} characters exceeds the limit of {MAX_SPEECH_CHARS} for speech")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng; scripts/setup.sh does it)")
    proc = subprocess.run([exe, "-v", VOICES[language], "-s", str(words_per_minute), "--stdout", "-b", "1"],
                          input=text.encode("utf-8"), capture_output=True, timeout=timeout_s, check=False)
    if proc.returncode != 0 or not proc.stdout.startswith(b"RIFF"):
        raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
    return _fix_sizes(proc.stdout)


def _fix_sizes(wav: bytes) -> bytes:
    """espeak-ng writes to a pipe, so its header cannot say how long the audio is: fill it in."""
    data = wav.find(b"data", 12)
    if data < 0:
        return wav
    out = bytearray(wav)
    struct.pack_into("<I", out, 4, len(out) - 8)
    struct.pack_into("<I", out, data + 4, len(out) - data - 8)
    return bytes(out)
