"""The playground over several turns and while it speaks: what a later turn sends and gets, and what
the models panel shows when the voice starts. Checked in the browser, against the real server."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import open_page
from .test_playground import ANSWER_MS, ask, ask_about_a_sign

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Request

pytestmark = pytest.mark.integration
GREETING = "Create a digital human receptionist who welcomes visitors to our dental clinic"

# When the voice starts playing: the models panel as drawn then ({model: [its state, its row's text]})
# and the decision's steps (which name the model that speaks).
AT_PLAY = """() => document.getElementById('voice').addEventListener('play', () => {
  const rows = [...document.querySelectorAll('#models tr[data-model]')];
  window.__atPlay = {
    panel: Object.fromEntries(rows.map((tr) => [tr.dataset.model,
                                                [tr.querySelector('[data-testid=state]').innerText, tr.innerText]])),
    steps: [...document.querySelectorAll('#decision li')].map((li) => li.innerText),
  };
}, {once: true})"""


def media_parts(request: Request) -> list[dict]:
    """The image, audio and video parts of every message a chat request sent."""
    return [part for message in request.post_data_json["messages"] if isinstance(message["content"], list)
            for part in message["content"] if part["type"] != "text"]


def test_the_voice_is_shown_loaded_in_the_models_panel_when_it_starts(browser: Browser, front: str) -> None:
    # The page's timers stand still: only what it does when an answer arrives can redraw the panel
    # (its periodic refresh would otherwise catch up by chance).
    page = open_page(browser, front, still_timers=True)
    try:
        voice = page.locator('#models tr[data-model="tts_espeak"]')
        voice.wait_for(timeout=30_000)
        assert voice.get_by_test_id("state").inner_text() == "unloaded", \
            "tts_espeak was loaded before this test (each module leaves the models as it found them)"
        page.evaluate(AT_PLAY)
        page.fill("#max-tokens", "24")
        page.fill("#prompt", GREETING)
        page.press("#prompt", "Enter")
        page.wait_for_function("() => window.__atPlay", timeout=ANSWER_MS, polling=100)
        seen = page.evaluate("window.__atPlay")
    finally:
        errors = page.console.errors
        page.context.close()
    assert errors == []
    assert any(step.startswith("speak by tts_espeak") for step in seen["steps"]), seen["steps"]
    state, row = seen["panel"]["tts_espeak"]
    loads = re.search(r"(\d+) loads", row)
    assert state == "loaded" and loads and int(loads[1]) >= 1, \
        f"the models panel showed tts_espeak {state!r} ({row!r}) when it started to speak"


def test_an_image_is_read_with_its_own_turn_only(page: Page, tmp_path: Path) -> None:
    ask_about_a_sign(page, tmp_path, "EXIT ONLY")
    with page.expect_request("**/v1/chat/completions") as sent:
        ask(page, "What is the capital of France?")
    # The later turn came with no attachment: the server reads none, and gets none. (Its answer's
    # words prove nothing: a small model may echo the earlier "Read from the image" in the history.)
    assert page.locator('#decision [data-signal="modality"]').inner_text() == "text"
    assert "ocr_tesseract" not in page.locator("#decision").inner_text()
    assert media_parts(sent.value) == []
    # The earlier turn still says what was attached to it.
    assert page.locator("#messages .msg.user .meta").all_inner_texts() == ["Attached: sign.png"]
