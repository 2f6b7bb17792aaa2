"""The playground, used as a person would: in Chromium, typing, attaching, listening, against the real
server. What is checked is what the browser shows and sends (the DOM, the audio element, the requests),
never the page's own variables."""
from __future__ import annotations

import json
import re

import pytest

from client.samples import text_image

from .conftest import open_page, playwright_api, screenshot
from tests.integration.conftest import LLM

pytestmark = pytest.mark.integration
ANSWER_MS = 240_000  # an answer on a small shared CPU, the LLM loaded
SIGNAL = re.compile(r"requested|complexity|only model|loaded|quality|cost|media|language")

# The text of the latest answer, as it grows (records every change the page makes to it).
WATCH_ANSWER = """() => {
  window.__answerLengths = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll('#messages .msg.assistant .text');
    if (answers.length) window.__answerLengths.push(answers[answers.length - 1].textContent.length);
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def ask(page, text: str, max_tokens: int = 32):
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
def test_page_loads_clean_labelled_and_fits(browser, front: str, width: int) -> None:
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
            pytest.fail(f"Tab never reached the message box (stopped at {page.evaluate('document.activeElement.id')!r})")
        screenshot(page, f"playground-{width}", full_page=True)
    finally:
        errors = page.console.errors
        page.context.close()
    assert errors == []


def test_a_typed_question_streams_and_shows_the_choice(page) -> None:
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


def test_an_image_with_text_is_read_by_ocr_and_says_so(page, tmp_path) -> None:
    sign = tmp_path / "sign.png"
    sign.write_bytes(text_image("OPEN DAILY FROM NINE"))
    page.set_input_files("#attach", str(sign))
    page.get_by_text("Attached: sign.png").wait_for()
    answer = ask(page, "What does this sign say?")
    assert "OPEN DAILY FROM NINE" in answer.locator(".text").inner_text().upper()
    assert page.locator('#decision [data-signal="modality"]').inner_text() == "image"
    steps = page.locator("#decision").inner_text()
    assert "ocr_tesseract" in steps
    assert "OCR" in page.get_by_test_id("degraded").first.inner_text()
    screenshot(page, "playground-ocr", full_page=True)


# The mouth while the voice plays, sampled every 40 ms: its drawn shape and the viseme it shows (it
# resolves when playback ends).
SAMPLE_MOUTH = """() => new Promise((resolve) => {
  const voice = document.getElementById('voice'), mouth = document.getElementById('mouth');
  const shapes = [], visemes = [];
  const sample = () => {
    if (!voice.paused && !voice.ended) { shapes.push(mouth.getAttribute('d')); visemes.push(mouth.dataset.viseme); }
    if (voice.ended) resolve({shapes, visemes, played: voice.currentTime, duration: voice.duration});
    else setTimeout(sample, 40);
  };
  sample();
})"""


def visemes_of(response) -> list[dict]:
    """The timeline in an answer: message.visemes of a whole one, a delta's of a streamed one."""
    if response.headers.get("content-type", "").startswith("application/json"):
        return response.json()["choices"][0]["message"].get("visemes") or []
    for line in response.text().splitlines():
        if line.startswith("data: {"):
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices", []):
                if choice["delta"].get("visemes"):
                    return choice["delta"]["visemes"]
    return []


def test_an_avatar_answer_speaks_and_moves_the_mouth(page) -> None:
    answers = []  # the answers the page received (streamed or whole): the speech and its timeline
    page.on("response", lambda r: r.url.endswith("/v1/chat/completions") and answers.append(r))
    page.fill("#max-tokens", "24")
    page.fill("#prompt", "Create a digital human receptionist who welcomes visitors to our dental clinic")
    page.press("#prompt", "Enter")
    page.wait_for_function("() => { const v = document.getElementById('voice');"
                           " return v.src && v.currentTime > 0; }", timeout=ANSWER_MS)
    screenshot(page.locator("#avatar-panel"), "playground-avatar")
    seen = page.evaluate(SAMPLE_MOUTH)
    assert seen["duration"] > 1.0 and seen["played"] >= seen["duration"] - 0.1
    assert len(set(seen["shapes"])) >= 3, f"the mouth kept {len(set(seen['shapes']))} shape(s) while speaking"
    assert page.locator('#decision [data-signal="use_case"]').inner_text() == "avatar"
    assert page.locator("#mouth").get_attribute("data-viseme") == "sil"  # closed once the voice ends
    # The mouth showed the router's viseme timeline, not shapes of its own.
    assert "lips from its viseme timeline" in page.locator("#avatar-hint").inner_text()
    assert len(set(seen["visemes"]) - {"sil"}) >= 3
    try:  # Chromium may not keep a streamed body: then the page's own word above stands
        timeline = visemes_of(answers[-1])
    except playwright_api.Error:
        return
    assert timeline, "the avatar's answer came without its viseme timeline"
    assert set(seen["visemes"]) <= {v["viseme"] for v in timeline} | {"sil"}


def test_the_models_panel_shows_the_llm_loaded_with_its_memory(page) -> None:
    row = page.locator(f'#models tr[data-model="{LLM}"]')
    row.wait_for(timeout=30_000)
    assert row.get_by_test_id("state").inner_text() == "loaded"
    memory = row.get_by_test_id("memory").inner_text()
    measured, declared = (float(re.search(rf"(\d+) MB {what}", memory)[1]) for what in ("measured", "declared"))
    assert measured > 0 and declared > 0, memory
    assert "budget" in page.locator("#models").inner_text()
    screenshot(page.locator("#models-panel"), "playground-models")
