"""The words every part of the router shares, spelled once: use cases, languages, attachments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

UseCase = Literal["agent", "multimodal", "video", "stt", "tts", "avatar"]
Language = Literal["en", "hi", "mr", "ta", "te", "bn", "gu", "kn", "ml", "pa"]
Complexity = Literal["low", "medium", "high"]
# What a request may carry besides its text; each is one router input of the same name.
Attachment = Literal["image", "audio", "video"]
ProfileName = Literal["cpu", "gpu"]

USE_CASES: tuple[str, ...] = get_args(UseCase)
LANGUAGES: tuple[str, ...] = get_args(Language)
COMPLEXITIES: tuple[str, ...] = get_args(Complexity)
ATTACHMENT_KINDS: tuple[str, ...] = get_args(Attachment)
PROFILES: tuple[str, ...] = get_args(ProfileName)


# The use case a request's primary input suggests when nothing else can say (the classifier is down).
USE_CASE_OF_MODALITY: dict[str, str] = {"video": "video", "image": "multimodal", "audio": "stt", "text": "agent"}


def modality_of(attachments: tuple[str, ...]) -> str:
    """The primary input: the richest attachment, else text."""
    return next((kind for kind in ("video", "image", "audio") if kind in attachments), "text")


@dataclass(frozen=True)
class UseCaseTraits:
    """How a use case shapes the work around its model (routing.pipeline, routing.router)."""

    default_question: str = ""  # asked when the request has attachments and no words
    persona: str = ""           # an instruction put before the prompt
    spoken: bool = False        # the reply is spoken (the `speak` step) with a viseme timeline


USE_CASE_TRAITS: dict[str, UseCaseTraits] = {
    "agent": UseCaseTraits(), "stt": UseCaseTraits(), "tts": UseCaseTraits(),
    "multimodal": UseCaseTraits("Describe this image."),
    "video": UseCaseTraits("Summarize this video."),
    "avatar": UseCaseTraits("Introduce yourself.",
                            "You are a friendly assistant with a face and a voice, talking to a visitor. "
                            "Reply in one to three short spoken sentences, without lists or markup.", spoken=True),
}
