"""The playground, used as a person would: in Chromium, typing, attaching, listening, against the real
server. What is checked is what the browser shows and sends (the DOM, the audio element, the requests),
never the page's own variables."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from client.samples import text_image

from .conftest import open_page, playwright_api, screenshot
from .lipsync import MOUTH_BOX, MOUTH_SHOWS, SAMPLE_MOUTH_FROM_PLAY, fit, timeline_in
from tests.integration.conftest import LLM

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Route

pytestmark = pytest.mark.integration
ANSWER_MS = 240_000  # an answer on a small shared CPU, the LLM loaded
CLOSE_MS = 30_000  # the page redrawing on an event, on a loaded CPU
SIGNAL = re.compile(r"requested|complexity|only model|loaded|quality|cost|media|language")

# The text of the latest answer, as it grows (records every change the page makes to it).
WATCH_ANSWER = """() => {
  window.__answerLengths = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll('#messages .msg.assistant .text');
    if (answers.length) window.__answerLengths.push(answers[answers.length - 1].textContent.length);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def ask(page: Page, text: str, max_tokens: int = 32) -> Locator:
    """Type `text` and press Enter; the answer's list item once it is complete."""
    before = page.locator("#messages .msg.assistant").count()
    page.fill("#max-tokens", str(max_tokens))
    page.fill("#prompt", text)
    page.press("#prompt", "Enter")
    answer = page.locator("#messages .msg.assistant").nth(before)
    answer.wait_for()
    page.wait_for_function("(i) => { const a = document.querySelectorAll('#messages .msg.assistant')[i];"
                           " return a && !a.hasAttribute('aria-busy'); }", arg=before, timeout=ANSWER_MS)
    assert "error" not in (answer.get_attribute("class") or ""), answer.inner_text()
    return answer


@pytest.mark.parametrize("width", [1280, 390])
def test_page_loads_clean_labelled_and_fits(browser: Browser, front: str, width: int) -> None:
    page = open_page(browser, front, width=width)
    try:
        page.locator(f'#models tr[data-model="{LLM}"]').wait_for(timeout=30_000)
        page.locator("#avatar svg #mouth").wait_for()
        assert LLM in page.locator("#model option").all_inner_texts()
        unlabelled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea, button')]
            .filter(el => !el.hidden && !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                          && !el.textContent.trim()).map(el => el.id || el.outerHTML)""")
        assert unlabelled == []
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the window
        # The keyboard reaches the message box: Tab from the top of the page.
        for _ in range(6):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == "prompt":
                break
        else:
            stopped = page.evaluate("document.activeElement.id")
            pytest.fail(f"Tab never reached the message box (stopped at {stopped!r})")
        screenshot(page, f"playground-{width}", full_page=True)
    finally:
        errors = page.console.errors
        page.context.close()
    assert errors == []


def test_a_typed_question_streams_and_shows_the_choice(page: Page) -> None:
    page.evaluate(WATCH_ANSWER)
    with page.expect_response("**/v1/chat/completions") as reply:
        answer = ask(page, "What is the capital of France?")
    assert reply.value.request.post_data_json["stream"] is True
    assert reply.value.headers["content-type"].startswith("text/event-stream")
    assert "Paris" in answer.locator(".text").inner_text()
    growth = [n for n in page.evaluate("window.__answerLengths") if n > 0]
    assert len(set(growth)) >= 2, f"the answer appeared at once, not streamed: lengths {growth}"
    assert page.get_by_test_id("chosen-model").inner_text() == LLM
    assert SIGNAL.search(page.get_by_test_id("decided-by").inner_text())
    legend = page.get_by_test_id("timeline-legend").inner_text()
    assert all(step in legend for step in ("classify", "select", "load", "first token", "last token"))
    assert page.locator('#decision [data-signal="use_case"]').inner_text() == "agent"
    screenshot(page, "playground-decision", full_page=True)


def ask_about_a_sign(page: Page, folder: Path, text: str) -> None:
    """Attach a picture of a sign that reads `text`, ask what it says: the answer says it, read from an image."""
    sign = folder / "sign.png"
    sign.write_bytes(text_image(text))
    page.set_input_files("#attach", str(sign))
    page.get_by_text("Attached: sign.png").wait_for()
    answer = ask(page, "What does this sign say?")
    assert text in answer.locator(".text").inner_text().upper()
    assert page.locator('#decision [data-signal="modality"]').inner_text() == "image"


def test_an_image_with_text_is_read_by_ocr_and_says_so(page: Page, tmp_path: Path) -> None:
    ask_about_a_sign(page, tmp_path, "OPEN DAILY FROM NINE")
    steps = page.locator("#decision").inner_text()
    assert "ocr_tesseract" in steps
    assert "OCR" in page.get_by_test_id("degraded").first.inner_text()
    screenshot(page, "playground-ocr", full_page=True)


def relay_chats(page: Page) -> list[tuple[str, str]]:
    """Pass the page's chat requests to the server and keep each answer as it came off the wire
    ((content type, body)), independently of what the page makes of it."""
    answers = []

    def relay(route: Route) -> None:
        response = route.fetch(timeout=ANSWER_MS)
        answers.append((response.headers.get("content-type", ""), response.text()))
        route.fulfill(response=response)

    page.route("**/v1/chat/completions", relay)
    return answers


def test_an_avatar_answer_speaks_and_the_mouth_follows_its_viseme_timeline(page: Page) -> None:
    answers = relay_chats(page)
    page.locator("#avatar svg #mouth").wait_for()
    closed = page.evaluate(MOUTH_BOX)  # at rest, before any speech
    # At half speed (as a listener may set it), so that each viseme lasts several frames on any CPU.
    page.evaluate("document.getElementById('voice').defaultPlaybackRate = 0.5")
    page.evaluate(SAMPLE_MOUTH_FROM_PLAY)
    page.fill("#max-tokens", "24")
    page.fill("#prompt", "Create a digital human receptionist who welcomes visitors to our dental clinic")
    page.press("#prompt", "Enter")
    page.wait_for_function("() => { const v = document.getElementById('voice');"
                           " return v.src && v.currentTime > 0; }", timeout=ANSWER_MS)
    screenshot(page.locator("#avatar-panel"), "playground-avatar")  # while it speaks, or once it has spoken
    seen = page.wait_for_function("() => window.__mouth", timeout=ANSWER_MS).json_value()
    assert seen["duration"] > 1.0 and seen["played"] >= seen["duration"] - 0.1
    assert page.locator('#decision [data-signal="use_case"]').inner_text() == "avatar"
    timeline = timeline_in(*answers[-1])
    assert len({v["viseme"] for v in timeline} - {"sil"}) >= 3, f"the answer's viseme timeline: {timeline}"
    # Each viseme of the timeline drawn with one shape of its own, whenever it plays: so the mouth
    # moves when the timeline does, and only then.
    lips = fit(seen["samples"], timeline)
    assert lips.samples >= 10, f"too few frames inside one viseme: {len(seen['samples'])} sampled"
    assert lips.agreement >= 0.9, f"the mouth did not keep to the timeline: {lips.boxes}"
    assert len(lips.boxes) >= 3 and len(lips.shapes) >= 3, f"the mouth hardly moved: {lips.boxes}"
    try:  # the page closes it on the voice's `ended`: a bound against a hang, not a speed
        page.wait_for_function(MOUTH_SHOWS, arg=closed, timeout=CLOSE_MS)
    except playwright_api.TimeoutError:
        pytest.fail(f"the mouth did not close when the voice ended: {page.evaluate(MOUTH_BOX)}, at rest {closed}")


def test_the_models_panel_shows_the_llm_loaded_with_its_memory(page: Page) -> None:
    row = page.locator(f'#models tr[data-model="{LLM}"]')
    row.wait_for(timeout=30_000)
    assert row.get_by_test_id("state").inner_text() == "loaded"
    memory = row.get_by_test_id("memory").inner_text()
    measured, declared = (float(re.search(rf"(\d+) MB {what}", memory)[1]) for what in ("measured", "declared"))
    assert measured > 0 and declared > 0, memory
    assert "budget" in page.locator("#models").inner_text()
    screenshot(page.locator("#models-panel"), "playground-models")
