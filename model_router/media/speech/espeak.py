"""libespeak-ng through ctypes: speech samples plus the time of every phoneme, in one synthesis.

The espeak-ng command line cannot say when each phoneme starts; the library's synchronous
mode hands back audio chunks together with phoneme events stamped with their sample
position, which is what lip-sync needs. The library keeps global state: one synthesis at a
time per process (Triton runs each model instance in its own process).
"""
from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x0001, 0x0002, 0x8000
_EVENT_LIST_TERMINATED, _EVENT_PHONEME = 0, 7
_PARAM_RATE = 1
_CHARS_UTF8 = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Synthesis:
    samples: bytes                         # 16-bit little-endian mono PCM
    sample_rate: int
    phonemes: list[tuple[int, str]]        # (start sample, IPA phoneme; "" is a pause)


class Espeak:
    """One initialised library per process."""

    _instance: Espeak | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        try:
            self._lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError as exc:
            raise RuntimeError("libespeak-ng is not installed (apt-get install espeak-ng; scripts/setup.sh does it)") from exc
        self.sample_rate = self._lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                                       _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks: list[bytes] = []
        self._phonemes: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # kept referenced: the library calls it later
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()

    @classmethod
    def get(cls) -> Espeak:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def _on_synth(self, wav, count: int, events) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(wav, count * 2))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                name = bytes(events[i].id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self._phonemes.append((events[i].sample, name))
            i += 1
        return 0

    def synthesize(self, text: str, voice: str, words_per_minute: int) -> Synthesis:
        with self._lock:
            self._chunks, self._phonemes = [], []
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise RuntimeError(f"espeak-ng has no voice {voice!r}")
            self._lib.espeak_SetParameter(_PARAM_RATE, words_per_minute, 0)
            data = text.encode("utf-8")
            status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
            self._lib.espeak_Synchronize()
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed ({status})")
            return Synthesis(b"".join(self._chunks), self.sample_rate, list(self._phonemes))
