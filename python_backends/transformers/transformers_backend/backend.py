"""What a Python-based backend of ours does as a Triton model, whatever its engine: settings read
and checked once, the task picked by the config's `task`, loaded at the configured priority, requests
handed to it. Each backend's model.py names its tasks (`Backend.tasks`) and how it finds its weights.
"""
from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import triton_python_backend_utils as pb_utils

from model_router.contract.generation import CONFIG_INPUTS, CONFIG_OUTPUTS
from model_router.triton.adapter import collect_no_more
from .settings import BackendSettings, SettingsError
from .tasks import Task

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


@contextmanager
def _loading_priority(load_priority: str, serve_nice: int) -> Iterator[None]:
    """Load at the server's priority, or ("idle") as an idle-priority task, so that a load on the
    same cores never slows a model that is serving (at the cost of loads that requests wait for);
    then serve at `serve_nice`. Threads inherit the policy of the thread that starts them."""
    if load_priority == "idle":
        _set_priority(os.SCHED_IDLE, 0, [threading.get_native_id()])
    try:
        yield
    finally:
        _set_priority(os.SCHED_OTHER, serve_nice, _threads())


class Backend:
    """The Triton model (TritonPythonModel) of a backend: `tasks` by config name."""

    tasks: dict[str, type[Task]] = {}

    @staticmethod
    def auto_complete_config(config):
        parameters = config.as_dict().get("parameters", {})
        if parameters.get("task", {}).get("string_value", "text-generation") != "text-generation":
            return config  # the speech tasks' configs spell out their I/O (model_repository_gpu/)
        have = {i["name"] for i in config.as_dict().get("input", [])}
        for name, dtype, optional in CONFIG_INPUTS:  # the vLLM backend's (its auto_complete_config), and ours
            if name not in have:
                config.add_input({"name": name, "data_type": dtype, "dims": [1], "optional": optional})
        have = {o["name"] for o in config.as_dict().get("output", [])}
        for name, dtype, dims in CONFIG_OUTPUTS:
            if name not in have:
                config.add_output({"name": name, "data_type": dtype, "dims": dims})
        config.set_max_batch_size(0)
        config.set_model_transaction_policy({"decoupled": True})
        return config

    def initialize(self, args: dict) -> None:
        name, config = args["model_name"], json.loads(args["model_config"])
        settings = self._settings(name, config, args)
        task = self._task(name, config, settings)
        model_path = self._model_path(name, settings)
        started = time.perf_counter()
        with _loading_priority(settings.load_priority, settings.serve_nice):
            self.task: Task = task(name, model_path, settings)
        pb_utils.Logger.log_info(f"{name}: loaded {model_path} ({settings.task}, {settings.device}) "
                                 f"in {time.perf_counter() - started:.2f}s")

    @staticmethod
    def _settings(name: str, config: dict, args: dict) -> BackendSettings:
        try:
            return BackendSettings.from_config(config, args.get("model_instance_kind", "CPU"),
                                               str(args.get("model_instance_device_id", "")))
        except SettingsError as exc:
            raise pb_utils.TritonModelException(f"{name}: {exc}") from None

    def _task(self, name: str, config: dict, settings: BackendSettings) -> type[Task]:
        task = self.tasks.get(settings.task)
        if task is None:
            raise pb_utils.TritonModelException(f"{name}: parameter task={settings.task!r} is not served by this "
                                                f"backend (it serves {sorted(self.tasks)})")
        if pb_utils.using_decoupled_model_transaction_policy(config) != task.decoupled:
            policy = "a decoupled" if task.decoupled else "a non-decoupled"
            raise pb_utils.TritonModelException(f"{name}: task {settings.task} needs {policy} transaction policy")
        return task

    def _model_path(self, name: str, settings: BackendSettings) -> str:
        """Where the weights are, or a TritonModelException naming model_path."""
        raise NotImplementedError

    def execute(self, requests):
        return self.task.execute(requests)

    def finalize(self) -> None:
        collect_no_more()
        self.task.finalize()
        # Tearing down (freeing the weights, the stub's exit) yields to the models still serving.
        _set_priority(os.SCHED_IDLE, 0, _threads())
