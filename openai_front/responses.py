"""OpenAI response bodies and stream chunks (protocol models), built from the router's answers. Pure."""
from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

from pydantic import BaseModel

from model_router.contract.router import RouterAnswer

from .protocol import (AssistantMessage, AudioOut, ChatCompletion, ChatCompletionChunk, Choice, ChunkChoice, Delta,
                       FunctionFragment, ToolCall, ToolCallDelta, Usage)

ROUTING_HEADER = "x-tmr-routing"
ROUTING_FIELD = "routing"  # ours, beside each API's own fields: the router's decision
DONE = "data: [DONE]\n\n"
ARGUMENTS_PIECE = 32  # characters of a streamed tool call's arguments per chunk


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def routing_header(decision: dict[str, Any]) -> dict[str, str]:
    # ASCII JSON: header values are latin-1, and a decision may quote non-ASCII text.
    return {ROUTING_HEADER: json.dumps(decision, ensure_ascii=True, separators=(",", ":"))} if decision else {}


def usage(answer: RouterAnswer) -> Usage | None:
    """The engine's own counts, as the router passed them on (None: the answer was not generated text)."""
    return answer.usage


def finish_reason(answer: RouterAnswer) -> str:
    """The router's reason ("tool_calls" when the model called tools, else the engine's); an answer that
    is not generated text simply ended ("stop")."""
    return answer.finish_reason or ("tool_calls" if answer.tool_calls else "stop")


def tool_calls(answer: RouterAnswer) -> list[ToolCall] | None:
    return [ToolCall.model_validate(call) for call in answer.tool_calls] if answer.tool_calls else None


def chat_completion(cid: str, model: str, answer: RouterAnswer) -> ChatCompletion:
    """A whole answer; `routing` (the router's decision) and `message.visemes` are ours, beside OpenAI's fields.
    A message that calls tools has no content when the model wrote nothing else, as OpenAI answers it."""
    calls = tool_calls(answer)
    message = AssistantMessage(content=answer.text or (None if calls else ""), tool_calls=calls,
                               visemes=answer.visemes)
    if answer.audio is not None:  # speech the router made (tts, avatar), as OpenAI's audio output
        message.audio = AudioOut(id=f"audio-{cid}", data=base64.b64encode(answer.audio).decode(),
                                 expires_at=int(time.time()) + 3600, transcript=answer.text)
    return ChatCompletion(id=cid, created=int(time.time()), model=model,
                          choices=[Choice(message=message, finish_reason=finish_reason(answer))],
                          usage=usage(answer), routing=answer.decision)


def chunk(cid: str, model: str, delta: Delta | None = None, finish: str | None = None,
          usage: Usage | None = None, routing: dict[str, Any] | None = None) -> str:
    """One server-sent event of a streamed answer. A usage chunk has no choices, as OpenAI sends it."""
    body = ChatCompletionChunk(id=cid, created=int(time.time()), model=model, usage=usage, routing=routing,
                               choices=[] if usage is not None else [ChunkChoice(delta=delta or Delta(),
                                                                                 finish_reason=finish)])
    return event(dump(body))


def tool_call_deltas(calls: list[ToolCall]) -> list[Delta]:
    """The deltas OpenAI streams a message's tool calls in: for each call, one that names it (id, name,
    no arguments), then its arguments in pieces; a client joins the pieces of each index."""
    deltas = []
    for index, call in enumerate(calls):
        deltas.append(Delta(tool_calls=[ToolCallDelta(index=index, id=call.id, type="function",
                                                      function=FunctionFragment(name=call.function.name))]))
        args = call.function.arguments
        deltas += [Delta(tool_calls=[ToolCallDelta(index=index, function=FunctionFragment(arguments=piece))])
                   for piece in (args[i:i + ARGUMENTS_PIECE] for i in range(0, len(args), ARGUMENTS_PIECE))]
    return deltas


def dump(body: BaseModel) -> dict[str, Any]:
    """A body as JSON, without our optional fields and OpenAI's optional objects when they are unset."""
    data = body.model_dump(mode="json")
    for name in ("usage", ROUTING_FIELD):
        if data.get(name) is None:
            data.pop(name, None)
    for choice in data.get("choices", []):
        message = choice.get("message") or {}
        for name in ("audio", "visemes", "tool_calls"):
            if message.get(name) is None:
                message.pop(name, None)
        delta = choice.get("delta") or {}
        for name in ("audio", "visemes"):
            if delta.get(name) is None:
                delta.pop(name, None)
        if delta.get("tool_calls") is None:
            delta.pop("tool_calls", None)
        else:  # as OpenAI streams them: a piece of arguments carries its index and the piece alone
            delta["tool_calls"] = [_present(call) for call in delta["tool_calls"]]
    return data


def _present(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _present(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


def event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def last_delta(cid: str, answer: RouterAnswer) -> Delta:
    """The router's last piece of text, with the speech it made (whole: it exists only at the end)."""
    delta = Delta(content=answer.text or None, visemes=answer.visemes)
    if answer.audio is not None:
        delta.audio = {"id": f"audio-{cid}", "data": base64.b64encode(answer.audio).decode(),
                       "transcript": answer.text, "expires_at": int(time.time()) + 3600}
    return delta
