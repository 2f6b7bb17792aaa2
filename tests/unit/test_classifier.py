"""The classifier library on queries written for these tests (not in its training corpus)."""
from __future__ import annotations

import pytest

from model_router.classifier import QueryClassifier
from model_router.classifier.training.data import load_corpus
from model_router.errors import InputError
from model_router.vocabulary import USE_CASES


@pytest.fixture(scope="module")
def clf() -> QueryClassifier:
    return QueryClassifier()


@pytest.mark.parametrize("text, attachments, use_case", [
    ("write a script to resize images", (), "agent"),
    ("make my avatar read this", (), "avatar"),
    ("read this aloud", (), "tts"),
    ("transcribe the recording I'll send", (), "stt"),
    ("Transcribe the handwriting on this page", ("image",), "multimodal"),
    ("What is going on in this footage?", ("video",), "video"),
    ("Make this picture of my dog talk and bark hello", ("image",), "avatar"),
    ("Type out what my professor says in this lecture", ("audio",), "stt"),
    ("What's the difference between TCP and UDP?", (), "agent"),
])
def test_hard_cases(clf: QueryClassifier, text: str, attachments: tuple, use_case: str) -> None:
    assert clf.classify(text, attachments).use_case == use_case


@pytest.mark.parametrize("text, attachments, language, use_case", [
    ("Can you tell me how photosynthesis works?", (), "en", "agent"),
    ("इस तस्वीर में कौन सी इमारत है?", ("image",), "hi", "multimodal"),
    ("ye audio sun ke pura text likh do", ("audio",), "hi", "stt"),
    ("या चित्रात कोणती इमारत आहे?", ("image",), "mr", "multimodal"),
    ("இந்த வீடியோவில் யார் பாடுகிறார்கள்?", ("video",), "ta", "video"),
    ("ఈ ఆడియోను టెక్స్ట్‌గా రాయండి.", ("audio",), "te", "stt"),
    ("এই ছবিতে কী আছে বলো।", ("image",), "bn", "multimodal"),
    ("આ વીડિયોમાં શું બતાવ્યું છે?", ("video",), "gu", "video"),
    ("ಈ ಫೋಟೋದಲ್ಲಿ ಯಾವ ಹೂವು ಇದೆ?", ("image",), "kn", "multimodal"),
    ("ഈ ഓഡിയോയിൽ പറയുന്നത് എഴുതൂ.", ("audio",), "ml", "stt"),
    ("ਇਸ ਵੀਡੀਓ ਵਿੱਚ ਕੀ ਦਿਖਾਇਆ ਗਿਆ ਹੈ?", ("video",), "pa", "video"),
])
def test_every_language(clf: QueryClassifier, text: str, attachments: tuple, language: str, use_case: str) -> None:
    result = clf.classify(text, attachments)
    assert (result.language, result.use_case) == (language, use_case)


def test_hindi_vs_marathi_same_script(clf: QueryClassifier) -> None:
    assert clf.classify("मुझे कल की बैठक के लिए एक एजेंडा बनाकर दो।").language == "hi"
    assert clf.classify("मला उद्याच्या बैठकीसाठी एक कार्यसूची तयार करून द्या.").language == "mr"


def test_romanized_hindi_vs_english(clf: QueryClassifier) -> None:
    assert clf.classify("kal ki meeting ke liye agenda bana do").language == "hi"
    assert clf.classify("make an agenda for tomorrow's meeting").language == "en"


def test_result_shape(clf: QueryClassifier) -> None:
    r = clf.classify("Describe this photo", ["image"])
    assert r.modality == "image"
    assert set(r.use_case_scores) == set(USE_CASES)
    assert abs(sum(r.use_case_scores.values()) - 1.0) < 1e-3
    assert r.confidence["use_case"] == max(r.use_case_scores.values())
    assert r.complexity in ("low", "medium", "high")
    assert clf.classify("", ["audio"]).modality == "audio"
    assert clf.classify("x", ["video", "audio"]).modality == "video"


@pytest.mark.parametrize("text, attachments, field, words", [
    ("", (), "text", "empty"),
    ("   ", (), "text", "empty"),
    ("a" * 8001, (), "text", "exceeds the limit of 8000"),
    (b"\xff\xfeabc", (), "text", "not valid UTF-8"),
    ("hello", ("pdf",), "attachments", "unknown kind 'pdf'"),
])
def test_bad_input_names_the_field(clf: QueryClassifier, text, attachments, field: str, words: str) -> None:
    with pytest.raises(InputError) as err:
        clf.classify(text, attachments)
    assert err.value.field == field and words in str(err.value)


def test_limit_is_configurable() -> None:
    with pytest.raises(InputError, match="exceeds the limit of 10"):
        QueryClassifier(max_chars=10, use_embeddings=False).classify("a" * 11)


def test_corpus_covers_every_language_and_use_case() -> None:
    rows = load_corpus()
    assert {r.language for r in rows} == {"en", "hi", "mr", "ta", "te", "bn", "gu", "kn", "ml", "pa"}
    assert {r.use_case for r in rows} == set(USE_CASES)


def test_heldout_dev_split_meets_targets(shared_dir) -> None:
    from model_router.classifier.training.data import load_jsonl, split_dev

    _, heldout = split_dev(load_jsonl(shared_dir / "datasets" / "queries_dev.jsonl"))
    clf = QueryClassifier()
    preds = [clf.classify(q.text, q.attachments) for q in heldout]
    uc = sum(p.use_case == q.use_case for p, q in zip(preds, heldout)) / len(heldout)
    lang = sum(p.language == q.language for p, q in zip(preds, heldout)) / len(heldout)
    assert uc >= 0.95 and lang >= 0.98, (uc, lang)
