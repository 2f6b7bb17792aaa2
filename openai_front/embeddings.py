"""POST /v1/embeddings (OpenAI's): texts in, the router's embedding model's vectors out.

One router call (options.embed) per request; the router picks the profile's embedding model (or the one
`model` names), loads it on demand and answers the vectors with their token counts. `dimensions` cuts each
vector to its first values and scales it back to unit length, as OpenAI does for its text-embedding-3
models; `encoding_format: base64` sends each vector as the bytes of its little-endian float32 values.
"""
from __future__ import annotations

import base64
from typing import Any, Literal

import numpy as np
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator

from model_router.contract.embedding import EMBED

from . import responses, serving
from .errors import ApiError, bad_request
from .protocol import AUTO, _Body
from .translate import RouterCall, router_call

EMBED_INPUT = f"options.{EMBED}.input"  # the router's field behind `input` (contract.request.Embed)


class EmbeddingsRequest(_Body):
    """OpenAI's embeddings request: `input` a text or a list of texts (token arrays are not taken)."""

    input: str | list[str]
    model: str = Field(min_length=1)
    dimensions: int | None = Field(None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None  # accepted: an end user's id for the provider's monitoring, not used here

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise ValueError(f"expected a string or a list of strings, got {type(value).__name__}")
        if any(isinstance(v, (int, list)) for v in value):
            raise ValueError("token arrays are not supported: send the text (a string or a list of strings)")
        wrong = next((i for i, v in enumerate(value) if not isinstance(v, str)), None)
        if wrong is not None:
            raise ValueError(f"expected a list of strings, but item {wrong} is {type(value[wrong]).__name__}")
        return value


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # base64: the float32 values' little-endian bytes


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    routing: dict[str, Any]  # ours: the router's decision


def embed_call(body: EmbeddingsRequest) -> RouterCall:
    """The router's request: the texts as options.embed.input, a model's name as options.model. A single
    text's errors name `input`, a list's `input[i]`."""
    unknown = next((name for name, value in (body.model_extra or {}).items() if value is not None), None)
    if unknown:  # set by the caller, and nothing here could honour it
        raise bad_request(unknown, "not supported by this server")
    texts = [body.input] if isinstance(body.input, str) else body.input
    fields = {EMBED_INPUT: "input", "options.model": "model"}
    if isinstance(body.input, str):
        fields[f"{EMBED_INPUT}[0]"] = "input"
    options: dict[str, Any] = {} if body.model == AUTO else {"model": body.model}
    return router_call(fields, "", {**options, EMBED: {"input": texts}})


def shaped(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Each vector cut to its first `dimensions` values and scaled back to unit length (all of it: None)."""
    if dimensions is None:
        return vectors
    if dimensions > vectors.shape[1]:
        raise bad_request("dimensions", f"{dimensions} exceeds the model's {vectors.shape[1]} dimensions")
    cut = vectors[:, :dimensions]
    return cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def encoded(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32).tolist()


async def serve(request: Request, body: EmbeddingsRequest) -> Response:
    final = await serving.answer(request, embed_call(body))
    if final.embeddings is None or final.usage is None:
        raise ApiError(500, f"{final.model}: answered without vectors", "server_error")
    vectors = shaped(final.embeddings, body.dimensions)
    data = [Embedding(index=i, embedding=encoded(v, body.encoding_format)) for i, v in enumerate(vectors)]
    usage = EmbeddingUsage(prompt_tokens=final.usage.prompt_tokens, total_tokens=final.usage.prompt_tokens)
    answer = EmbeddingList(data=data, model=final.model or body.model, usage=usage, routing=final.decision)
    return JSONResponse(answer.model_dump(mode="json"), headers=responses.routing_header(final.decision))
