import io
import shutil
import wave

import pytest

from model_router.errors import InputError
from model_router.speech import speech_text, synthesize


@pytest.mark.parametrize("query, said", [
    ("Read this aloud: 'The museum closes at six.'", "The museum closes at six."),
    ("text to speech: Your order has shipped.", "Your order has shipped."),
    ('Say "good morning everyone" cheerfully', "good morning everyone"),
    ("इसे बोलकर सुनाओ: 'शुभ रात्रि'", "शुभ रात्रि"),
    ("Narrate a calm welcome", "Narrate a calm welcome"),
])
def test_what_to_say(query: str, said: str) -> None:
    assert speech_text(query) == said


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
@pytest.mark.parametrize("text, language", [("Good morning everyone", "en"), ("नमस्ते दोस्तों", "hi"),
                                            ("காலை வணக்கம்", "ta")])
def test_synthesize_gives_a_wav_of_plausible_length(text: str, language: str) -> None:
    w = wave.open(io.BytesIO(synthesize(text, language)))
    seconds = w.getnframes() / w.getframerate()
    assert w.getnchannels() == 1 and 0.5 < seconds < 5, seconds


def test_unknown_language_and_empty_text() -> None:
    with pytest.raises(InputError, match="language: 'fr' has no voice. Available"):
        synthesize("bonjour", "fr")
    with pytest.raises(InputError, match="text: nothing to say"):
        synthesize("  ", "en")
