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


@pytest.fixture(scope="module")
def dev_heldout(shared_dir, clf: QueryClassifier) -> tuple[list, list]:
    from model_router.classifier.training.data import load_jsonl, split_dev

    _, heldout = split_dev(load_jsonl(shared_dir / "datasets" / "queries_dev.jsonl"))
    return heldout, [clf.classify(q.text, q.attachments) for q in heldout]


def test_heldout_dev_split_meets_targets(dev_heldout) -> None:
    heldout, preds = dev_heldout
    uc = sum(p.use_case == q.use_case for p, q in zip(preds, heldout)) / len(heldout)
    lang = sum(p.language == q.language for p, q in zip(preds, heldout)) / len(heldout)
    assert uc >= 0.95 and lang >= 0.98, (uc, lang)


def test_heldout_dev_split_complexity(dev_heldout) -> None:
    """The dev set's complexity labels predate our definition (README), so its floor is lower than the
    unseen set's; low <-> high swaps are the costly mistake either way."""
    from model_router.classifier.training.metrics import low_high_rate

    heldout, preds = dev_heldout
    exact = sum(p.complexity == q.complexity for p, q in zip(preds, heldout)) / len(heldout)
    swaps = low_high_rate([q.complexity for q in heldout], [p.complexity for p in preds])
    assert exact >= 0.70 and swaps <= 0.03, (exact, swaps)


# Short inputs (issue 12): a user's first message is often a greeting. Alone it is agent work; sent
# with an attachment it asks about the attachment (image -> multimodal, video -> video, audio -> stt).
@pytest.mark.parametrize("text, attachments, language, use_case", [
    ("Hi", (), "en", "agent"),
    ("hello there", (), "en", "agent"),
    ("Good morning", (), "en", "agent"),
    ("Many thanks", (), "en", "agent"),
    ("Hi", ("image",), "en", "multimodal"),
    ("write it down", ("audio",), "en", "stt"),
    ("namaste", (), "hi", "agent"),
    ("dhanyawad ji", (), "hi", "agent"),
    ("kya hai ye", ("image",), "hi", "multimodal"),
    ("नमस्ते दोस्तों", (), "hi", "agent"),
    ("आपका धन्यवाद", (), "hi", "agent"),
    ("हैलो जी", ("image",), "hi", "multimodal"),
    ("लिख दो", ("audio",), "hi", "stt"),
    ("नमस्कार, कसे आहात?", (), "mr", "agent"),
    ("आभारी आहोत", (), "mr", "agent"),
    ("हे बघा ना", ("image",), "mr", "multimodal"),
    ("வணக்கம் அண்ணா", (), "ta", "agent"),
    ("மிக்க நன்றி", (), "ta", "agent"),
    ("இதைப் பாரு", ("image",), "ta", "multimodal"),
    ("எழுதிக் கொடு", ("audio",), "ta", "stt"),
    ("నమస్కారం అండి", (), "te", "agent"),
    ("చాలా ధన్యవాదాలు", (), "te", "agent"),
    ("ఇది చూడండి", ("video",), "te", "video"),
    ("নমস্কার, কেমন আছো?", (), "bn", "agent"),
    ("অনেক ধন্যবাদ", (), "bn", "agent"),
    ("এটা দেখুন", ("image",), "bn", "multimodal"),
    ("નમસ્કાર", (), "gu", "agent"),
    ("ખૂબ ખૂબ આભાર", (), "gu", "agent"),
    ("લખી આપો", ("audio",), "gu", "stt"),
    ("ನಮಸ್ಕಾರ ಗೆಳೆಯ", (), "kn", "agent"),
    ("ತುಂಬಾ ಧನ್ಯವಾದಗಳು", (), "kn", "agent"),
    ("ಇದನ್ನು ನೋಡು", ("video",), "kn", "video"),
    ("നമസ്കാരം സുഹൃത്തേ", (), "ml", "agent"),
    ("വളരെ നന്ദി", (), "ml", "agent"),
    ("ഇതൊന്ന് നോക്കൂ", ("image",), "ml", "multimodal"),
    ("ਸਤਿ ਸ੍ਰੀ ਅਕਾਲ ਵੀਰ ਜੀ", (), "pa", "agent"),
    ("ਬਹੁਤ ਧੰਨਵਾਦ", (), "pa", "agent"),
    ("ਲਿਖ ਦਿਓ", ("audio",), "pa", "stt"),
])
def test_short_inputs(clf: QueryClassifier, text: str, attachments: tuple, language: str, use_case: str) -> None:
    r = clf.classify(text, attachments)
    assert (r.use_case, r.language, r.complexity) == (use_case, language, "low")


# Avatar from its cue in every script: the same request with the avatar is avatar, without it tts.
_AVATAR_VS_TTS = [
    ("en", "Get my avatar to read this paragraph out: 'Parking is free after 6 pm.'",
     "Read this paragraph out: 'Parking is free after 6 pm.'"),
    ("hi", "मेरे अवतार को यह अनुच्छेद बोलने दो: 'पार्किंग शाम छह बजे के बाद मुफ़्त है।'",
     "यह अनुच्छेद बोलकर सुनाओ: 'पार्किंग शाम छह बजे के बाद मुफ़्त है।'"),
    ("hi", "mera avatar ye paragraph bole: 'parking shaam chhe baje ke baad free hai'",
     "ye paragraph bol ke sunao: 'parking shaam chhe baje ke baad free hai'"),
    ("mr", "माझ्या अवतारला हा परिच्छेद वाचायला लावा: 'संध्याकाळी सहानंतर पार्किंग मोफत आहे.'",
     "हा परिच्छेद वाचून दाखवा: 'संध्याकाळी सहानंतर पार्किंग मोफत आहे.'"),
    ("ta", "என் அவதார் இந்தப் பத்தியை வாசிக்க வேண்டும்: 'மாலை ஆறு மணிக்கு பிறகு பார்க்கிங் இலவசம்.'",
     "இந்தப் பத்தியை வாசித்துக் காட்டு: 'மாலை ஆறு மணிக்கு பிறகு பார்க்கிங் இலவசம்.'"),
    ("te", "నా అవతార్ ఈ పేరాను చదవాలి: 'సాయంత్రం ఆరు తర్వాత పార్కింగ్ ఉచితం.'",
     "ఈ పేరాను చదివి వినిపించు: 'సాయంత్రం ఆరు తర్వాత పార్కింగ్ ఉచితం.'"),
    ("bn", "আমার অবতার এই অনুচ্ছেদটা পড়ে শোনাক: 'সন্ধ্যা ছটার পরে পার্কিং ফ্রি।'",
     "এই অনুচ্ছেদটা পড়ে শোনাও: 'সন্ধ্যা ছটার পরে পার্কিং ফ্রি।'"),
    ("gu", "મારો અવતાર આ ફકરો બોલે: 'સાંજે છ પછી પાર્કિંગ મફત છે.'",
     "આ ફકરો વાંચી સંભળાવો: 'સાંજે છ પછી પાર્કિંગ મફત છે.'"),
    ("kn", "ನನ್ನ ಅವತಾರ್ ಈ ಪ್ಯಾರಾ ಓದಲಿ: 'ಸಂಜೆ ಆರರ ನಂತರ ಪಾರ್ಕಿಂಗ್ ಉಚಿತ.'",
     "ಈ ಪ್ಯಾರಾ ಓದಿ ಕೇಳಿಸಿ: 'ಸಂಜೆ ಆರರ ನಂತರ ಪಾರ್ಕಿಂಗ್ ಉಚಿತ.'"),
    ("ml", "എന്റെ അവതാർ ഈ ഖണ്ഡിക വായിക്കണം: 'വൈകുന്നേരം ആറിന് ശേഷം പാർക്കിംഗ് സൗജന്യമാണ്.'",
     "ഈ ഖണ്ഡിക വായിച്ചു കേൾപ്പിക്കൂ: 'വൈകുന്നേരം ആറിന് ശേഷം പാർക്കിംഗ് സൗജന്യമാണ്.'"),
    ("pa", "ਮੇਰਾ ਅਵਤਾਰ ਇਹ ਪੈਰਾ ਪੜ੍ਹੇ: 'ਸ਼ਾਮ ਛੇ ਵਜੇ ਤੋਂ ਬਾਅਦ ਪਾਰਕਿੰਗ ਮੁਫ਼ਤ ਹੈ।'",
     "ਇਹ ਪੈਰਾ ਪੜ੍ਹ ਕੇ ਸੁਣਾਓ: 'ਸ਼ਾਮ ਛੇ ਵਜੇ ਤੋਂ ਬਾਅਦ ਪਾਰਕਿੰਗ ਮੁਫ਼ਤ ਹੈ।'"),
]


@pytest.mark.parametrize("language, with_avatar, without", _AVATAR_VS_TTS,
                         ids=[f"{i}-{case[0]}" for i, case in enumerate(_AVATAR_VS_TTS)])
def test_avatar_word_in_every_script(clf: QueryClassifier, language: str, with_avatar: str, without: str) -> None:
    a, t = clf.classify(with_avatar), clf.classify(without)
    assert (a.use_case, a.language) == ("avatar", language)
    assert (t.use_case, t.language) == ("tts", language)


@pytest.mark.parametrize("text, attachments, use_case", [
    ("A digital human should welcome guests at the museum entrance.", (), "avatar"),
    ("संग्रहालय के लिए एक वर्चुअल एंकर तैयार करो जो रोज़ की प्रदर्शनी बताए", (), "avatar"),
    ("या फोटोचा बोलणारा चेहरा म्हणजे टॉकिंग हेड बनवा", ("image",), "avatar"),
    ("இந்த ஆடியோவுக்கு என் புகைப்படத்தை லிப்-சிங்க் செய்", ("image", "audio"), "avatar"),
    ("మ్యూజియం కోసం వర్చువల్ యాంకర్ తయారు చేయి", (), "avatar"),
    ("এই ছবি থেকে একটা টকিং হেড বানাও", ("image",), "avatar"),
    ("મ્યુઝિયમ માટે વર્ચ્યુઅલ પ્રેઝન્ટર બનાવો જે મુલાકાતીઓને ગેલેરી સમજાવે", (), "avatar"),
    ("ಮ್ಯೂಸಿಯಂಗೆ ಡಿಜಿಟಲ್ ಹ್ಯೂಮನ್ ಮಾಡಿ, ಅದು ಅತಿಥಿಗಳನ್ನು ಸ್ವಾಗತಿಸಲಿ", (), "avatar"),
    ("ഈ ഓഡിയോയിലേക്ക് എന്റെ ചിത്രം ലിപ് സിങ്ക് ചെയ്യൂ", ("image", "audio"), "avatar"),
    ("ਇਸ ਫੋਟੋ ਤੋਂ ਟਾਕਿੰਗ ਹੈੱਡ ਬਣਾਓ", ("image",), "avatar"),
    # The word without the task: an incarnation or the film is a question for the assistant.
    ("Which avatar of Vishnu is Krishna?", (), "agent"),
    ("कृष्ण विष्णु के कौन से अवतार हैं?", (), "agent"),
    ("অবতার ছবির দ্বিতীয় পর্ব কবে মুক্তি পায়?", (), "agent"),
])
def test_avatar_cues(clf: QueryClassifier, text: str, attachments: tuple, use_case: str) -> None:
    assert clf.classify(text, attachments).use_case == use_case


@pytest.mark.parametrize("text", ["😀😀😀", "👨‍👩‍👧‍👦", "123 456", "?!"])
def test_text_without_letters_is_english_with_no_confidence(clf: QueryClassifier, text: str) -> None:
    result = clf.classify(text)
    assert (result.language, result.confidence["language"]) == ("en", 0.0)
