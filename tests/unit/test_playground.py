"""The playground's files as the front serves them: the page at /, every module it imports, nothing
fetched from elsewhere (no CDN: the page works where the server has no internet)."""
from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openai_front import playground

IMPORT = re.compile(r"""(?:^|\n)\s*import\s[^;]*?from\s+["'](\.[^"']+)["']""")
ASSET = re.compile(r"""(?:src|href)="([^"#][^"]*)\"""")


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    playground.mount(app)
    return TestClient(app)


def _module_graph(client: TestClient, entry: str) -> dict[str, str]:
    """Every module reachable from `entry` by its static imports, with its source."""
    seen: dict[str, str] = {}
    todo = [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        resp = client.get(path)
        assert resp.status_code == 200, f"{path}: {resp.status_code}"
        assert "javascript" in resp.headers["content-type"], f"{path}: served as {resp.headers['content-type']}"
        seen[path] = resp.text
        base = path.rsplit("/", 1)[0]
        todo += [f"{base}/{rel[2:]}" for rel in IMPORT.findall(resp.text)]
    return seen


def test_the_page_and_every_file_it_names_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = [a for a in ASSET.findall(page.text) if not a.startswith("data:")]
    assert "/playground/js/main.js" in assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    modules = _module_graph(client, "/playground/js/main.js")
    assert {"/playground/js/api.js", "/playground/js/avatar.js", "/playground/js/models.js"} <= set(modules)
    assert client.get("/playground/avatar.svg").headers["content-type"].startswith("image/svg")


def test_nothing_is_fetched_from_another_host() -> None:
    for path in playground.STATIC.rglob("*"):
        if path.is_file():
            urls = [u for u in re.findall(r"https?://[^\s\"')]+", path.read_text()) if "www.w3.org/2000/svg" not in u]
            assert urls == [], f"{path.name} names another host: {urls}"


def test_a_file_outside_the_folder_is_not_served(client: TestClient) -> None:
    assert client.get("/playground/../playground.py").status_code == 404
    assert client.get("/playground/%2e%2e/playground.py").status_code == 404
