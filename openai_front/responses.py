"""OpenAI response bodies and stream chunks, built from what the router returned. Pure."""
from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

ROUTING_HEADER = "x-tmr-routing"
DONE = "data: [DONE]\n\n"


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def routing_header(decision: dict[str, Any]) -> dict[str, str]:
    # ASCII JSON: header values are latin-1, and a decision may quote non-ASCII text.
    return {ROUTING_HEADER: json.dumps(decision, ensure_ascii=True, separators=(",", ":"))} if decision else {}


def finish_reason(completion_tokens: int, max_tokens: int | None, exact: bool) -> str:
    """"length" when the answer used all of the max_tokens the client set (known only with the model's
    own tokenizer; the router's default limit is not known here)."""
    return "length" if exact and max_tokens is not None and completion_tokens >= max_tokens else "stop"


def chat_completion(cid: str, model: str, text: str, finish: str, usage: dict[str, int],
                    decision: dict[str, Any], audio: bytes | None = None) -> dict[str, Any]:
    """A whole answer; `routing` (the router's decision) is ours, beside OpenAI's fields."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if audio is not None:  # speech the router made (tts, avatar), as OpenAI's audio output
        message["audio"] = {"id": f"audio-{cid}", "data": base64.b64encode(audio).decode(),
                            "expires_at": int(time.time()) + 3600, "transcript": text}
    return {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage, "routing": decision}


def chunk(cid: str, model: str, delta: dict[str, Any] | None = None, finish: str | None = None,
          usage: dict[str, int] | None = None, **extra: Any) -> str:
    """One server-sent event of a streamed answer. A usage chunk has no choices, as OpenAI sends it."""
    body: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
    body["choices"] = [] if usage is not None else [{"index": 0, "delta": delta or {}, "finish_reason": finish,
                                                      "logprobs": None}]
    if usage is not None:
        body["usage"] = usage
    body.update(extra)
    return event(body)


def event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"
