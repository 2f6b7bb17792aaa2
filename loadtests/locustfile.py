"""Locust load test of the router: a mix of the six use cases, over Triton HTTP and gRPC, and the
OpenAI-compatible API.

Triton's users go through the project's client (client.RouterClient): HTTP users over Triton's
generate route (JSON, so text only: agent, tts, avatar), gRPC users over tritonclient's streaming
API (which attachments need: stt, multimodal, video, agent). OpenAI users call the OpenAI front
(openai_front) over plain HTTP as any OpenAI client would: chat, chat streamed (SSE), speech; they
run only when its URL is given (--openai-url or TMR_OPENAI_URL, e.g. http://127.0.0.1:9000, with
TMR_OPENAI_API_KEY when it needs a key). Requests the router turns away under load ("router
overloaded": model_router.serving.admission; a 503 from the front) are reported under the name
"rejected"; any other error is a failure of its use case. Run headless with scripts/loadtest.py,
which also writes CSV and a summary.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000   (TMR_GRPC_URL=127.0.0.1:8001)
"""
from __future__ import annotations

import json
import os
import time

import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()  # before any channel: grpcio must yield to gevent like the rest of Locust

import requests
from locust import User, between, events, task

from client import RouterClient
from client.samples import text_image, text_video

SHORT = {"max_tokens": 16, "temperature": 0}
REJECTED = ("router overloaded",)


def _speech() -> bytes:
    from model_router.media.speech import synthesize

    return synthesize("Good morning everyone, welcome to the show.", "en").wav


IMAGE = text_image("OPEN DAILY FROM NINE", fmt="JPEG")
VIDEO = text_video(["WELCOME TO MUMBAI", "TRAIN LEAVES AT NINE"])
AUDIO = _speech()


def _report(environment, request_type: str, name: str, started: float, length: int, error: str | None) -> None:
    if error and any(r in error for r in REJECTED):
        name = "rejected"
    environment.events.request.fire(request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
                                    response_length=length, exception=Exception(error[:200]) if error else None, context={})


class RouterUser(User):
    """One request at a time through RouterClient, each reported to Locust."""

    abstract = True
    protocol = "grpc"
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        url = self.host.removeprefix("http://") if self.protocol == "http" else os.environ.get("TMR_GRPC_URL", "127.0.0.1:8001")
        self.router = RouterClient(url, self.protocol, timeout=180.0)

    def _route(self, name: str, text: str, options: dict, **attachments: bytes) -> None:
        started = time.perf_counter()
        error, length = None, 0
        try:
            routed = self.router.route(text, options, **attachments)
            length = len(routed.text) + len(routed.audio or b"")
            if not (routed.text.strip() or routed.audio):
                error = f"{name}: empty answer"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        _report(self.environment, self.protocol.replace("http", "HTTP").replace("grpc", "gRPC"), name, started, length, error)


class RouterHttpUser(RouterUser):
    """Text requests over Triton's HTTP generate route."""

    protocol = "http"

    @task(4)
    def agent(self) -> None:
        self._route("http agent", "What is the capital of France?", {"sampling_parameters": SHORT})

    @task(2)
    def tts(self) -> None:
        self._route("http tts", "Read this aloud: 'Your table is ready.'", {})

    @task(1)
    def avatar(self) -> None:
        self._route("http avatar", "Hello! Please greet our visitors.", {"use_case": "avatar", "sampling_parameters": SHORT})


class RouterGrpcUser(RouterUser):
    """Requests with attachments over gRPC (tritonclient streaming)."""

    protocol = "grpc"

    @task(2)
    def agent(self) -> None:
        self._route("grpc agent", "Name three primary colours.", {"sampling_parameters": SHORT})

    @task(1)
    def stt(self) -> None:
        self._route("grpc stt", "Transcribe this audio.", {"use_case": "stt"}, audio=AUDIO)

    @task(1)
    def multimodal(self) -> None:
        self._route("grpc multimodal", "What does this sign say?", {"sampling_parameters": SHORT}, image=IMAGE)

    @task(1)
    def video(self) -> None:
        self._route("grpc video", "Summarize this video.", {"sampling_parameters": SHORT}, video=VIDEO)


class OpenAIUser(User):
    """The OpenAI-compatible API, as the openai SDK or a chat front end calls it (plain HTTP)."""

    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.url = os.environ["TMR_OPENAI_URL"].rstrip("/") + "/v1"
        self.http = requests.Session()
        key = os.environ.get("TMR_OPENAI_API_KEY")
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def _post(self, name: str, path: str, body: dict, read) -> None:
        """POST `body`; `read(response)` returns the answer's length (0: empty, a failure)."""
        started = time.perf_counter()
        error, length = None, 0
        try:
            with self.http.post(f"{self.url}{path}", json=body, stream=True, timeout=180) as resp:
                if resp.status_code != 200:
                    error = f"HTTP {resp.status_code}: {resp.text[:300]}"
                else:
                    length = read(resp)
                    error = None if length else f"{name}: empty answer"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        _report(self.environment, "OpenAI", name, started, length, error)

    @task(3)
    def chat(self) -> None:
        self._post("openai chat", "/chat/completions",
                   {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}],
                    **SHORT}, lambda r: len(r.json()["choices"][0]["message"]["content"].strip()))

    @task(2)
    def chat_stream(self) -> None:
        def read(resp) -> int:
            text = ""
            for line in resp.iter_lines():
                if line.startswith(b"data: {"):
                    event = json.loads(line[6:])
                    if "error" in event:
                        raise RuntimeError(event["error"]["message"])
                    text += "".join(c["delta"].get("content") or "" for c in event["choices"])
            return len(text.strip())

        self._post("openai chat stream", "/chat/completions",
                   {"model": "auto", "stream": True, **SHORT,
                    "messages": [{"role": "user", "content": "Name three primary colours."}]}, read)

    @task(1)
    def speech(self) -> None:
        self._post("openai speech", "/audio/speech",
                   {"model": "auto", "voice": "alloy", "input": "Your table is ready."}, lambda r: len(r.content))


@events.init_command_line_parser.add_listener
def _args(parser) -> None:
    parser.add_argument("--grpc-url", default="", help="Triton gRPC host:port (default: TMR_GRPC_URL)")
    parser.add_argument("--openai-url", default="", help="the OpenAI front, http://host:port (default: TMR_OPENAI_URL)")


@events.init.add_listener
def _openai_url(environment, **_kw) -> None:
    url = getattr(environment.parsed_options, "openai_url", "") if environment.parsed_options else ""
    if url:
        os.environ["TMR_OPENAI_URL"] = url
    if not os.environ.get("TMR_OPENAI_URL"):  # no front to call: OpenAI users would only fail
        environment.user_classes[:] = [u for u in environment.user_classes if u is not OpenAIUser]


@events.test_start.add_listener
def _grpc_url(environment, **_kw) -> None:
    url = getattr(environment.parsed_options, "grpc_url", "") if environment.parsed_options else ""
    if url:
        os.environ["TMR_GRPC_URL"] = url


@events.quit.add_listener
def _exit_now(exit_code: int, **_kw) -> None:
    # The stats are written by now. Skip interpreter teardown: a gRPC channel finalized under
    # gevent can hang there for minutes.
    os._exit(exit_code)
