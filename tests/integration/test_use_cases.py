"""The six use cases through the router on the real server, each checked on real content.

Speech round trips (espeak's voice heard by Whisper) are held to a word error rate bound, not to exact
words: which words a small model mishears on a synthetic voice varies with the CPU's arithmetic."""
from __future__ import annotations

import io
import re
import wave

import pytest

from client import RouterClient
from client.api import InferenceServerException
from client.samples import flac, text_image, text_video

pytestmark = pytest.mark.integration
SHORT = {"max_tokens": 48, "temperature": 0}
# The most of a sentence's words a round trip may get wrong (substituted, dropped or added), as a share of
# its words. Measured here: 0.22 at worst over 10 runs (2 of 9 words: "quick round fox dumps").
MAX_WER = 0.4


@pytest.fixture(scope="module")
def grpc(router) -> RouterClient:
    return RouterClient(router.grpc_url, "grpc")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, heard: str) -> float:
    """Word-level edit distance (substitutions + deletions + insertions) over the reference's length."""
    ref, hyp = words(reference), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / len(ref)


def test_word_error_rate_counts_each_kind_of_error() -> None:
    said = "the quick brown fox jumps over the lazy dog"
    assert word_error_rate(said, "The quick brown fox jumps over the lazy dog.") == 0
    assert word_error_rate(said, "The quick round fox dumps over the lazy dog") == pytest.approx(2 / 9)
    assert word_error_rate(said, "the quick fox jumps over the lazy old dog") == pytest.approx(2 / 9)
    assert word_error_rate(said, "") == 1 and word_error_rate(said, "a b c d e f g h i j") > 1


def seconds(wav: bytes) -> float:
    w = wave.open(io.BytesIO(wav))
    return w.getnframes() / w.getframerate()


def test_agent_answers_a_factual_question(grpc: RouterClient) -> None:
    result = grpc.route("What is the capital of France?", {"sampling_parameters": SHORT})
    assert result.decision["use_case"] == "agent" and "Paris" in result.text


def test_tts_speaks_english_and_hindi(grpc: RouterClient, server) -> None:
    result = grpc.route("Read this aloud: 'Good morning everyone, welcome to the show.'", {})
    assert result.decision["use_case"] == "tts" and result.decision["model"] == "tts_espeak"
    assert 1.5 < seconds(result.audio) < 8
    assert abs(result.visemes[-1]["end"] - seconds(result.audio)) < 0.01
    hindi = RouterClient(server.http_url).route("यह वाक्य ज़ोर से पढ़कर सुनाओ: 'आपका दिन शुभ हो।'", {})
    assert hindi.decision["language"] == "hi" and seconds(hindi.audio) > 0.5


def test_speech_round_trip_tts_then_stt(grpc: RouterClient) -> None:
    spoken = grpc.route("Read this aloud: 'Good morning everyone, welcome to the show.'", {})
    heard = grpc.route("Transcribe this audio.", {}, audio=spoken.audio)
    assert heard.decision["use_case"] == "stt" and heard.decision["model"] == "stt_whisper_base"
    said = "Good morning everyone, welcome to the show."
    print(f"WER {word_error_rate(said, heard.text):.2f}: {heard.text!r}")  # shown with pytest -rP
    assert word_error_rate(said, heard.text) <= MAX_WER, (said, heard.text)


def test_stt_on_a_flac_clip_the_test_made(grpc: RouterClient) -> None:
    from model_router.media.speech import synthesize

    said = "The quick brown fox jumps over the lazy dog."
    heard = grpc.route("", {"use_case": "stt"}, audio=flac(synthesize(said, "en").wav))
    print(f"WER {word_error_rate(said, heard.text):.2f}: {heard.text!r}")  # shown with pytest -rP
    assert word_error_rate(said, heard.text) <= MAX_WER, (said, heard.text)
    with pytest.raises(InferenceServerException, match="audio: cannot decode"):
        grpc.route("Transcribe this audio.", {}, audio=b"RIFF not really a wav file")
    with pytest.raises(InferenceServerException, match="audio: speech to text needs an audio attachment"):
        grpc.route("Transcribe this recording.", {"use_case": "stt"})


def test_multimodal_reads_the_text_in_an_image(grpc: RouterClient) -> None:
    result = grpc.route("What does this sign say?", {"sampling_parameters": SHORT},
                        image=text_image("OPEN DAILY FROM NINE", fmt="JPEG"))
    d = result.decision
    assert d["use_case"] == "multimodal" and d["model"] == "smollm2_135m_instruct"
    assert [s["model"] for s in d["steps"]] == ["ocr_tesseract"] and "OCR" in d["degraded"][0]
    assert "OPEN DAILY FROM NINE" in result.text
    answer = result.text.split("\n\n", 1)[1]  # after the evidence: the LLM's own answer
    assert "OPEN DAILY FROM NINE" in answer.upper(), result.text


def test_video_summary_mentions_the_text_on_its_frames(grpc: RouterClient) -> None:
    video = text_video(["WELCOME TO MUMBAI", "TRAIN LEAVES AT NINE"])
    result = grpc.route("Summarize this video.", {"sampling_parameters": SHORT}, video=video)
    d = result.decision
    assert d["use_case"] == "video" and [s["step"] for s in d["steps"]] == ["sample_video", "read_image"]
    assert "WELCOME TO MUMBAI" in result.text and "TRAIN LEAVES AT NINE" in result.text, result.text
    assert result.text.index("WELCOME") < result.text.index("TRAIN")  # in the order shown
    assert len(result.text.split("\n\n", 1)[1].strip()) > 10  # and the LLM's summary after the evidence
    assert d["degraded"]


def test_avatar_returns_reply_speech_and_visemes_that_match(grpc: RouterClient) -> None:
    result = grpc.route("Hello! Please greet the visitors to our museum.", {"use_case": "avatar", "sampling_parameters": SHORT})
    d = result.decision
    assert d["use_case"] == "avatar" and [s["step"] for s in d["steps"]] == ["speak"] and not d["degraded"]
    assert len(result.text.split()) >= 3
    audio_s = seconds(result.audio)
    v = result.visemes
    assert audio_s > 1.0 and v[0]["start"] == 0 and abs(v[-1]["end"] - audio_s) < 0.01
    assert all(a["end"] == b["start"] for a, b in zip(v, v[1:]))
    assert len({e["viseme"] for e in v}) >= 5  # a moving mouth, not one shape


def test_corrupt_image_and_video_are_clear_errors(grpc: RouterClient) -> None:
    with pytest.raises(InferenceServerException, match=r"image\[0\]: cannot decode"):
        grpc.route("What is in this picture?", {}, image=b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(InferenceServerException, match="video: cannot decode"):
        grpc.route("Summarize this video.", {}, video=b"\x00\x00\x00\x18ftypmp42 broken")
    assert "Paris" in grpc.route("What is the capital of France?", {"sampling_parameters": SHORT}).text
