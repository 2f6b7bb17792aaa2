"""A GGUF model in llama.cpp (through llama-cpp-python's C API): its weights, one context whose KV
cache holds every sequence of the batch, its vocabulary and the chat template stored in the file.

Kept free of Triton so that it can be run and tested in a plain Python process.
"""
from __future__ import annotations

import ctypes
import json
import os
import threading
from datetime import datetime
from typing import Any

import llama_cpp

from model_router.errors import InputError
from model_router.tools.prompt import template_turn

_BACKEND = threading.Lock()
_backend_ready = False


class ModelFileError(RuntimeError):
    """The file is missing, is not a GGUF model llama.cpp can load, or lacks what serving needs."""


def _init_backend() -> None:
    global _backend_ready
    with _BACKEND:
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True


def _quiet_logs() -> None:
    """llama.cpp logs every tensor of a load to stderr; Triton's log keeps what we say instead."""
    @llama_cpp.llama_log_callback
    def _drop(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        return None

    global _LOG_CALLBACK
    _LOG_CALLBACK = _drop  # kept alive: llama.cpp calls it from C
    llama_cpp.llama_log_set(_drop, ctypes.c_void_p(0))


_LOG_CALLBACK = None


class GGUFModel:
    """One loaded GGUF model and its context for `n_seq` sequences sharing `n_ctx` KV cells."""

    def __init__(self, path: str, n_ctx: int, n_seq: int, threads: int = 0, n_batch: int = 512) -> None:
        if not os.path.isfile(path):
            raise ModelFileError(f"no model file at {path}")
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelFileError(f"{path} is not a GGUF file")
        _init_backend()
        _quiet_logs()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(path.encode(), params)
        if not self.model:
            raise ModelFileError(f"llama.cpp could not load {path} (a damaged or unsupported GGUF file)")
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        threads = threads or os.cpu_count() or 1
        ctx = llama_cpp.llama_context_default_params()
        ctx.n_ctx, ctx.n_batch, ctx.n_ubatch, ctx.n_seq_max = n_ctx, n_batch, n_batch, n_seq
        ctx.n_threads = ctx.n_threads_batch = threads
        ctx.kv_unified = True  # one pool of cells for all sequences: a long answer may use what short ones leave
        ctx.no_perf = True
        self.ctx = llama_cpp.llama_init_from_model(self.model, ctx)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise ModelFileError(f"llama.cpp could not make a context of {n_ctx} cells for {path}")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_ctx, self.n_seq, self.n_batch = n_ctx, n_seq, n_batch
        self.eog = {t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self.vocab, t)}
        self.template = self.metadata("tokenizer.chat_template")
        self._piece = ctypes.create_string_buffer(256)

    def metadata(self, key: str) -> str | None:
        size = llama_cpp.llama_model_meta_val_str(self.model, key.encode(), None, 0)
        if size < 0:
            return None
        buf = ctypes.create_string_buffer(size + 1)
        llama_cpp.llama_model_meta_val_str(self.model, key.encode(), buf, size + 1)
        return buf.value.decode("utf-8", "replace")

    def token_text(self, token: int) -> str:
        n = llama_cpp.llama_token_to_piece(self.vocab, token, self._piece, len(self._piece), 0, True)
        return self._piece.raw[:max(n, 0)].decode("utf-8", "replace")

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`; `special`: the template's control tokens (<|im_start|>) are parsed as such."""
        data = text.encode("utf-8")
        room = len(data) + 16
        ids = (llama_cpp.llama_token * room)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), ids, room, False, special)
        if n < 0:  # cannot happen with a byte per token of room; kept for safety
            room = -n
            ids = (llama_cpp.llama_token * room)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), ids, room, False, special)
        return list(ids[:n])

    def detokenize(self, ids: list[int]) -> str:
        """Text of `ids`, control tokens left out; a character cut mid-way ends in U+FFFD."""
        if not ids:
            return ""
        arr = (llama_cpp.llama_token * len(ids))(*ids)
        room = len(ids) * 16 + 16
        buf = ctypes.create_string_buffer(room)
        n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, room, False, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, -n, False, False)
        return buf.raw[:n].decode("utf-8", "replace")

    def render(self, turns: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        """The conversation through the file's own chat template, ending where the answer starts."""
        if not self.template:
            raise ModelFileError("the GGUF file has no chat template (tokenizer.chat_template)")
        return _compiled(self.template).render(messages=[template_turn(t) for t in turns], tools=tools or None,
                                               add_generation_prompt=True, bos_token="", eos_token="")

    def close(self) -> None:
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None


_TEMPLATES: dict[str, Any] = {}


def _compiled(source: str) -> Any:
    """A chat template compiled as Hugging Face compiles them (a sandbox; tojson, raise_exception)."""
    if source not in _TEMPLATES:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise InputError("messages", f"the chat template refused the conversation: {message}")

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = lambda value, indent=None, ensure_ascii=False, sort_keys=False: json.dumps(
            value, indent=indent, ensure_ascii=ensure_ascii, sort_keys=sort_keys)
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        _TEMPLATES[source] = env.from_string(source)
    return _TEMPLATES[source]
