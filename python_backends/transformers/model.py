"""Triton Python-based backend "transformers": serves a Hugging Face model named in config.pbtxt.

A model folder needs a config.pbtxt with `backend: "transformers"`, a `model_path` parameter (a
directory, or a hub id found in the local Hugging Face cache: nothing is downloaded) and a `task`:
  text-generation               the vLLM backend's contract (decoupled), so it can stand in for one
  automatic-speech-recognition  audio (+ language) -> text_output, language, segments
  text-to-speech                text -> audio (WAV), sample_rate, visemes ("[]": no phoneme timing)
Parameter `device` (cpu, cuda) follows the instance kind unless set.
"""
from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from model_router.errors import InputError  # noqa: E402
from model_router.sampling import SamplingError, parse_sampling_parameters  # noqa: E402
from model_router.text import decode_text  # noqa: E402

_FINAL = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
# task -> whether it streams (decoupled); the others answer each request once.
TASKS = {"text-generation": True, "automatic-speech-recognition": False, "text-to-speech": False}


def _resolve(model_path: str) -> str:
    """A directory as it is; a hub id ("openai/whisper-large-v3") from the local cache only."""
    if os.path.isdir(model_path):
        return model_path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model_path, local_files_only=True)
    except Exception:
        return ""


def _param(config: dict, key: str, default: str = "") -> str:
    return os.path.expandvars(config.get("parameters", {}).get(key, {}).get("string_value", default))


def _scalar(request, name: str, default=None):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return default
    arr = tensor.as_numpy().reshape(-1)
    if arr.size != 1:
        raise ValueError(f"{name}: expected exactly one element, got {arr.size}")
    return arr[0]


def _set_priority(policy: int, nice: int, tids: list[int]) -> None:
    """Linux schedules threads one by one: set the policy and nice value of each."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, policy, os.sched_param(0))
            if policy == os.SCHED_OTHER:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:  # unprivileged, or the thread is gone: leave it as it is
            pass


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        if _param(config.as_dict(), "task", "text-generation") != "text-generation":
            return config  # the speech tasks' configs spell out their I/O (model_repository_gpu/)
        inputs = [("text_input", "TYPE_STRING", False), ("stream", "TYPE_BOOL", True),
                  ("sampling_parameters", "TYPE_STRING", True), ("exclude_input_in_output", "TYPE_BOOL", True)]
        have = {i["name"] for i in config.as_dict().get("input", [])}
        for name, dtype, optional in inputs:
            if name not in have:
                config.add_input({"name": name, "data_type": dtype, "dims": [1], "optional": optional})
        if not config.as_dict().get("output"):
            config.add_output({"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]})
        config.set_max_batch_size(0)
        config.set_model_transaction_policy({"decoupled": True})
        return config

    def initialize(self, args: dict) -> None:
        self.config = json.loads(args["model_config"])
        self.name = args["model_name"]
        self.device = _param(self.config, "device", "cuda" if args.get("model_instance_kind") == "GPU" else "cpu")
        if self.device == "cuda" and args.get("model_instance_device_id"):
            self.device = f"cuda:{args['model_instance_device_id']}"
        self.logger = pb_utils.Logger
        self._check_config()
        # CPU priority: load as an idle-priority task and serve above normal priority, so that a
        # model loading on the same cores (its stub start included, which we cannot reach) never
        # starves one that is serving. Threads inherit the policy of the thread that starts them.
        serve_nice = int(_param(self.config, "serve_nice", "-10"))
        _set_priority(os.SCHED_IDLE, 0, [threading.get_native_id()])
        try:
            self._init_engine()
        finally:
            _set_priority(os.SCHED_OTHER, serve_nice, [int(t) for t in os.listdir("/proc/self/task")])
        self._requests: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._serve_loop, name=f"{self.name}-worker", daemon=True)
        if TASKS[self.task]:
            self._worker.start()

    def _check_config(self) -> None:
        self.task = _param(self.config, "task", "text-generation")
        if self.task not in TASKS:
            raise pb_utils.TritonModelException(f"{self.name}: task={self.task!r} unknown. Available: {list(TASKS)}")
        if pb_utils.using_decoupled_model_transaction_policy(self.config) != TASKS[self.task]:
            policy = "a decoupled" if TASKS[self.task] else "a non-decoupled"
            raise pb_utils.TritonModelException(f"{self.name}: task {self.task} needs {policy} transaction policy")
        wanted = _param(self.config, "model_path")
        self.model_path = _resolve(wanted) if wanted else ""
        if not self.model_path:
            raise pb_utils.TritonModelException(
                f"{self.name}: parameter model_path={wanted!r} is neither a directory nor in the local Hugging Face cache")

    def _init_engine(self) -> None:
        started = time.perf_counter()
        dtype = _param(self.config, "dtype", "float32")
        if self.task == "automatic-speech-recognition":
            from speech_recognition import SpeechRecognizer

            self.engine = SpeechRecognizer(self.model_path, self.device, dtype)
        elif self.task == "text-to-speech":
            from text_to_speech import Synthesizer

            self.engine = Synthesizer(self.model_path, self.device, dtype)
        else:
            self._init_text_generation()
        self.logger.log_info(f"{self.name}: loaded {self.model_path} ({self.task}, {self.device}) "
                             f"in {time.perf_counter() - started:.2f}s")

    def _init_text_generation(self) -> None:
        from text_generation import TextGenerator

        self.engine = TextGenerator(
            self.model_path, device=self.device,
            threads=int(_param(self.config, "threads", "0") or 0),
            use_chat_template=_param(self.config, "chat_template", "true").lower() == "true",
            max_input_tokens=int(_param(self.config, "max_input_tokens", "2048")),
            dtype=_param(self.config, "dtype", "float32"))
        self.max_tokens_limit = int(_param(self.config, "max_tokens_limit", "1024"))

    def execute(self, requests):
        if not TASKS[self.task]:
            return [self._answer(r) for r in requests]
        # Only schedule: generation runs on the worker so that execute returns at once. The router's
        # admission limits bound how many wait here.
        for request in requests:
            self._requests.put(request)
        return None

    def _answer(self, request):
        """One response for a speech task; bad input is INVALID_ARG, and the model keeps serving."""
        try:
            if self.task == "automatic-speech-recognition":
                audio = _scalar(request, "audio")
                hint = decode_text(_scalar(request, "language", b""), 16, "language").strip() or None
                t = self.engine.transcribe(bytes(audio) if audio is not None else b"", hint)
                out = {"text_output": t.text, "language": t.language, "segments": json.dumps(t.segments)}
            else:
                text = decode_text(_scalar(request, "text"), 2000).strip()
                if not text:
                    raise InputError("text", "nothing to say")
                wav, rate = self.engine.synthesize(text)
                tensors = [pb_utils.Tensor("audio", np.array([wav], dtype=np.object_)),
                           pb_utils.Tensor("sample_rate", np.array([rate], dtype=np.int32)),
                           pb_utils.Tensor("visemes", np.array([b"[]"], dtype=np.object_))]
                return pb_utils.InferenceResponse(output_tensors=tensors)
        except (InputError, ValueError) as exc:
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG))
        except Exception as exc:  # this request fails; the model keeps serving
            self.logger.log_error(f"{self.name}: {self.task} failed: {exc!r}")
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{self.name}: {self.task} failed: {exc}"))
        return pb_utils.InferenceResponse(output_tensors=[
            pb_utils.Tensor(k, np.array([v.encode("utf-8")], dtype=np.object_)) for k, v in out.items()])

    def _serve_loop(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            sender = request.get_response_sender()
            try:
                self._generate(request, sender)
            except (ValueError, SamplingError) as exc:
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)),
                            flags=_FINAL)
            except Exception as exc:  # a broken request must not stop the worker
                self.logger.log_error(f"{self.name}: generation failed: {exc!r}")
                sender.send(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"{self.name}: generation failed: {exc}")),
                            flags=_FINAL)

    def _generate(self, request, sender) -> None:
        raw = _scalar(request, "text_input")
        if raw is None:
            raise ValueError("text_input: required")
        try:
            prompt = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        except UnicodeDecodeError:
            raise ValueError("text_input: not valid UTF-8") from None
        if not prompt.strip():
            raise ValueError("text_input: empty")
        stream = bool(_scalar(request, "stream", False))
        exclude = bool(_scalar(request, "exclude_input_in_output", False))
        params = parse_sampling_parameters(_scalar(request, "sampling_parameters"), self.max_tokens_limit)
        pieces = self.engine.generate(prompt, params, is_cancelled=request.is_cancelled)
        if stream:
            for piece in pieces:
                if request.is_cancelled():
                    break
                sender.send(self._response(piece))
            sender.send(flags=_FINAL)
        else:
            text = "".join(pieces)
            sender.send(self._response(text if exclude else prompt + text), flags=_FINAL)

    @staticmethod
    def _response(text: str):
        out = pb_utils.Tensor("text_output", np.array([text.encode("utf-8")], dtype=np.object_))
        return pb_utils.InferenceResponse(output_tensors=[out])

    def finalize(self) -> None:
        if self._worker.is_alive():
            self._requests.put(None)
            self._worker.join(timeout=30)
        # Tearing down (freeing the weights, the stub's exit) yields to the models still serving.
        _set_priority(os.SCHED_IDLE, 0, [int(t) for t in os.listdir("/proc/self/task")])
