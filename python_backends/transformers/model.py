"""Triton Python-based backend "transformers": serves a Hugging Face model named in config.pbtxt.

A model folder needs a config.pbtxt with `backend: "transformers"`, a `model_path` parameter (a
directory, or a hub id found in the local Hugging Face cache: nothing is downloaded) and a `task`
(transformers_backend.tasks.TASKS: text-generation, automatic-speech-recognition, text-to-speech).
Parameter `device` (cpu, cuda) follows the instance kind unless set.
"""
from __future__ import annotations

import json
import os
import threading
import time

import triton_python_backend_utils as pb_utils

from model_router.triton.adapter import param
from transformers_backend.tasks import TASKS, TextGenerationTask

_VLLM_INPUTS = [("text_input", "TYPE_STRING", False), ("stream", "TYPE_BOOL", True),
                ("sampling_parameters", "TYPE_STRING", True), ("exclude_input_in_output", "TYPE_BOOL", True),
                ("messages", "TYPE_STRING", True)]  # the last is ours: a conversation


def _resolve(model_path: str) -> str:
    """A directory as it is; a hub id ("openai/whisper-large-v3") from the local cache only."""
    if os.path.isdir(model_path):
        return model_path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(model_path, local_files_only=True)
    except Exception:
        return ""


def _set_priority(policy: int, nice: int, tids: list[int]) -> None:
    """Linux schedules threads one by one: set the policy and nice value of each."""
    for tid in tids:
        try:
            os.sched_setscheduler(tid, policy, os.sched_param(0))
            if policy == os.SCHED_OTHER:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError:  # unprivileged, or the thread is gone: leave it as it is
            pass


def _threads() -> list[int]:
    return [int(t) for t in os.listdir("/proc/self/task")]


class TritonPythonModel:
    @staticmethod
    def auto_complete_config(config):
        if TASKS.get(param(config.as_dict(), "task", "text-generation")) is not TextGenerationTask:
            return config  # the speech tasks' configs spell out their I/O (model_repository_gpu/)
        have = {i["name"] for i in config.as_dict().get("input", [])}
        for name, dtype, optional in _VLLM_INPUTS:
            if name not in have:
                config.add_input({"name": name, "data_type": dtype, "dims": [1], "optional": optional})
        if not config.as_dict().get("output"):
            config.add_output({"name": "text_output", "data_type": "TYPE_STRING", "dims": [-1]})
        config.set_max_batch_size(0)
        config.set_model_transaction_policy({"decoupled": True})
        return config

    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        name = args["model_name"]
        task, model_path = self._check_config(name, config)
        device = param(config, "device", "cuda" if args.get("model_instance_kind") == "GPU" else "cpu")
        if device == "cuda" and args.get("model_instance_device_id"):
            device = f"cuda:{args['model_instance_device_id']}"
        # CPU priority: load as an idle-priority task and serve above normal priority, so that a
        # model loading on the same cores (its stub start included, which we cannot reach) never
        # starves one that is serving. Threads inherit the policy of the thread that starts them.
        started = time.perf_counter()
        _set_priority(os.SCHED_IDLE, 0, [threading.get_native_id()])
        try:
            self.task = task(name, model_path, device, config)
        finally:
            _set_priority(os.SCHED_OTHER, int(param(config, "serve_nice", "-10")), _threads())
        pb_utils.Logger.log_info(f"{name}: loaded {model_path} ({param(config, 'task', 'text-generation')}, "
                                 f"{device}) in {time.perf_counter() - started:.2f}s")

    @staticmethod
    def _check_config(name: str, config: dict):
        wanted = param(config, "task", "text-generation")
        if wanted not in TASKS:
            raise pb_utils.TritonModelException(f"{name}: task={wanted!r} unknown. Available: {list(TASKS)}")
        task = TASKS[wanted]
        if pb_utils.using_decoupled_model_transaction_policy(config) != task.decoupled:
            policy = "a decoupled" if task.decoupled else "a non-decoupled"
            raise pb_utils.TritonModelException(f"{name}: task {wanted} needs {policy} transaction policy")
        path = param(config, "model_path")
        resolved = _resolve(path) if path else ""
        if not resolved:
            raise pb_utils.TritonModelException(
                f"{name}: parameter model_path={path!r} is neither a directory nor in the local Hugging Face cache")
        return task, resolved

    def execute(self, requests):
        return self.task.execute(requests)

    def finalize(self) -> None:
        self.task.finalize()
        # Tearing down (freeing the weights, the stub's exit) yields to the models still serving.
        _set_priority(os.SCHED_IDLE, 0, _threads())
