import io
import shutil
import wave

import pytest

from model_router.errors import InputError
from model_router.media.speech import synthesize
from model_router.media.speech.visemes import VISEMES, timeline, viseme
from model_router.routing.targets import clip_for_speech, what_to_say


@pytest.mark.parametrize("query, said", [
    ("Read this aloud: 'The museum closes at six.'", "The museum closes at six."),
    ("text to speech: Your order has shipped.", "Your order has shipped."),
    ('Say "good morning everyone" cheerfully', "good morning everyone"),
    ("इसे बोलकर सुनाओ: 'शुभ रात्रि'", "शुभ रात्रि"),
    ("Narrate a calm welcome", "Narrate a calm welcome"),
])
def test_what_to_say(query: str, said: str) -> None:
    assert what_to_say(query) == said


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
@pytest.mark.parametrize("text, language", [("Good morning everyone", "en"), ("नमस्ते दोस्तों", "hi"),
                                            ("காலை வணக்கம்", "ta")])
def test_synthesize_gives_a_wav_and_visemes_covering_it(text: str, language: str) -> None:
    speech = synthesize(text, language)
    w = wave.open(io.BytesIO(speech.wav))
    seconds = w.getnframes() / w.getframerate()
    assert w.getnchannels() == 1 and 0.5 < seconds < 5, seconds
    v = speech.visemes
    assert v[0]["start"] == 0 and abs(v[-1]["end"] - seconds) < 1e-3
    assert all(a["end"] == b["start"] for a, b in zip(v, v[1:])), "gaps or overlaps in the timeline"
    assert all(e["viseme"] in VISEMES for e in v)
    # speech moves the mouth: most of the time is not silence
    assert sum(e["end"] - e["start"] for e in v if e["viseme"] != "sil") > seconds / 2


def test_viseme_mapping() -> None:
    assert [viseme(p) for p in ["m", "f", "θ", "t", "k", "tʃ", "s", "n", "ɹ", "ˈa", "ɛ", "iː", "oʊ", "uː", ""]] == \
        ["PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U", "sil"]


def test_timeline_merges_runs_and_ends_at_the_audio() -> None:
    t = timeline([(100, "b"), (200, "m"), (300, "a")], 500, 1000)
    assert [(e["start"], e["end"], e["viseme"]) for e in t] == [(0, 0.1, "sil"), (0.1, 0.3, "PP"), (0.3, 0.5, "aa")]


def test_clip_for_speech_cuts_at_a_sentence() -> None:
    text = "One two three. " * 200
    clipped = clip_for_speech(text, 100)
    assert len(clipped) <= 100 and clipped.endswith(".")


def test_unknown_language_and_empty_text() -> None:
    with pytest.raises(InputError, match="language: 'fr' has no voice. Available"):
        synthesize("bonjour", "fr")
    with pytest.raises(InputError, match="text: nothing to say"):
        synthesize("  ", "en")
