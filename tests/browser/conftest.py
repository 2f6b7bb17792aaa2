"""The playground in Debian's Chromium, driven by Playwright, against the real server: the shared
tritonserver with the router (tests/integration's fixtures) and the OpenAI front serving the page.

Nothing downloads a browser: Playwright drives /usr/bin/chromium (apt package `chromium`)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from launcher import TritonServer, free_port

if TYPE_CHECKING:  # Playwright may be absent: the module then skips
    from playwright.sync_api import Browser, Locator, Page

# The shared server and the router come from tests/conftest.py, the same ones the integration tests use.

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
# Where the tests leave their screenshots: an ignored folder, so that a run leaves a clone clean;
# scripts/screenshots.py points it at docs/screenshots to refresh README's pictures on purpose.
SCREENSHOTS = Path(os.environ.get("TMR_SCREENSHOTS") or REPO / ".run" / "screenshots")

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (requirements.txt)")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is absent: apt-get install chromium (scripts/setup.sh)", allow_module_level=True)


@pytest.fixture(scope="module")
def front(router: TritonServer) -> Iterator[str]:
    """The front on a free port, in a thread of this process; its URL."""
    import uvicorn

    from openai_front.app import Settings, create_app

    port = free_port()
    app = create_app(Settings(triton_grpc=router.grpc_url))  # as the run command builds it: the page at /
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="openai-front", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the front did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(30)
    assert not thread.is_alive(), "the front did not stop"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Playwright's sync API runs an event loop in this thread while it is open: closed with the module,
    so that tests after it may run their own (asyncio.run)."""
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


class Console:
    """What the page reported: console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))


def open_page(browser: Browser, url: str, width: int = 1280, height: int = 900, still_timers: bool = False) -> Page:
    """A fresh page at `url`, its console watched (page.console). `still_timers`: the page's timers
    (setTimeout, requestAnimationFrame) never fire, so that only what it does on an event shows."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.console = Console(page)
    if still_timers:
        # Installed at a set time and paused well ahead of it: the fake clock runs between the two calls
        # (however long a busy machine takes), and it cannot pause in its past. Before the page has set a
        # timer, so that the jump ahead fires none.
        now_ms = time.time() * 1000
        page.clock.install(time=now_ms)
        page.clock.pause_at(now_ms + 60_000)
    page.goto(url)
    return page


@pytest.fixture
def page(browser: Browser, front: str) -> Iterator[Page]:
    page = open_page(browser, front)
    yield page
    errors = page.console.errors
    page.context.close()
    assert not errors, errors


def screenshot(target: Page | Locator, name: str, **kwargs) -> Path:
    """A PNG of a page or an element (a locator) under SCREENSHOTS."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path), **kwargs)
    return path

