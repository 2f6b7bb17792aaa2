"""The web playground: a static page at `/` that talks to this front's own OpenAI API, nothing else.

No build step: plain HTML, CSS and JavaScript modules from `playground/`, served as they lie.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("playground")
PREFIX = "/playground"  # where the page's own files are (index.html names them by this path)


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its files under /playground/ (no API key: the page holds none itself;
    its requests to /v1 carry the key the user types)."""
    app.mount(PREFIX, StaticFiles(directory=STATIC), name="playground")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
