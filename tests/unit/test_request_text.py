"""Unicode edge cases of a query's text, in both empty checks (the router's RouterRequest.of and the
classifier's classify share request.check_query): invisible-only text is empty; emoji, ZWJ
sequences and mixed scripts are text and get a classification."""
from __future__ import annotations

import pytest

from model_router.contract.router import RouterRequest
from model_router.classifier import QueryClassifier
from model_router.errors import InputError
from model_router.contract.request import check_query, is_blank
from model_router.vocabulary import COMPLEXITIES, LANGUAGES, USE_CASES

# Invisible format characters (Unicode Cf) that str.strip() keeps.
ZWSP, ZWNJ, ZWJ, BOM, WJ, SHY = "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u00ad"

INVISIBLE = {
    "zero-width space": ZWSP,
    "zero-width non-joiner": ZWNJ,
    "zero-width joiner": ZWJ,
    "byte order mark": BOM,
    "word joiner": WJ,
    "soft hyphen": SHY,
    "all of them": ZWSP + ZWNJ + ZWJ + BOM + WJ + SHY,
    "mixed with whitespace": f" {ZWSP}\n{BOM}\t{WJ} ",
}
VISIBLE = {
    "emoji only": "😀🎉🙏",
    "one emoji": "😀",
    "ZWJ family sequence": "👨\u200d👩\u200d👧\u200d👦",
    "ZWJ sequence with skin tone": "👩🏽\u200d💻",
    "flag (regional indicators)": "🇮🇳",
    "keycap sequence": "1\ufe0f\u20e3",
    "mixed Devanagari and Latin": "मुझे Python में एक function लिखना है",
    # ZWNJ/ZWJ inside Indic words shape the letters: such text must not be taken for blank.
    "Devanagari with a joiner": "क्\u200dष",
    "Malayalam with a non-joiner": "ഇന്ത്യ\u200cയിൽ",
}


@pytest.fixture(scope="module")
def clf() -> QueryClassifier:
    return QueryClassifier()


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_only_text_is_blank_and_refused_naming_text(text: str, clf: QueryClassifier) -> None:
    assert is_blank(text)
    codes = sorted({f"U+{ord(c):04X}" for c in text if not c.isspace()})
    # The router's check and the classifier's, each an InputError naming `text` and the characters.
    for check in (lambda: RouterRequest.of(text.encode(), None, {}), lambda: clf.classify(text)):
        with pytest.raises(InputError, match=r"^text: empty \(only invisible characters: U\+") as err:
            check()
        assert err.value.field == "text"
        assert all(code in str(err.value) for code in codes[:5]), str(err.value)


@pytest.mark.parametrize("text", ["", " ", "\n\t  \r"], ids=["empty", "space", "whitespace"])
def test_plain_empty_text_keeps_its_message(text: str) -> None:
    with pytest.raises(InputError, match=r"^text: empty, and no image, audio or video was given$"):
        check_query(text, ())


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_text_with_an_attachment_is_a_query(text: str) -> None:
    check_query(text, ("audio",))  # the attachment is the query (e.g. "transcribe this", unsaid)
    assert RouterRequest.of(text, None, {"audio": b"RIFF"}).kinds == ("audio",)


@pytest.mark.parametrize("text", VISIBLE.values(), ids=VISIBLE.keys())
def test_emoji_zwj_and_mixed_script_text_is_classified(text: str, clf: QueryClassifier) -> None:
    assert not is_blank(text)
    assert RouterRequest.of(text, None, {}).text == text  # accepted as is, joiners kept
    c = clf.classify(text)
    assert c.use_case in USE_CASES and c.language in LANGUAGES and c.complexity in COMPLEXITIES
    assert c.modality == "text"
    assert set(c.use_case_scores) == set(USE_CASES)
    assert all(0.0 <= v <= 1.0 for v in c.confidence.values()), c.confidence


def test_mixed_devanagari_and_latin_is_hindi(clf: QueryClassifier) -> None:
    assert clf.classify(VISIBLE["mixed Devanagari and Latin"]).language == "hi"
