"""A request's JSON body, read once and validated against its pydantic model: errors name the client's field."""
from __future__ import annotations

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from .errors import bad_request, invalid_body

Body = TypeVar("Body", bound=BaseModel)


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The body as `model`, or a 400 naming the field (the whole `body` when it is no JSON object)."""
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("body", "not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body", f"expected a JSON object, got {type(body).__name__}")
    try:  # JSON may escape half of a UTF-16 pair ("\ud800"), which no UTF-8 text can carry on
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise bad_request("body", f"not valid Unicode: a lone surrogate {exc.object[exc.start]!r}") from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_body(exc, model) from None
