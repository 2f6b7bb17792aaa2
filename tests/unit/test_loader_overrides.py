"""A vLLM model loads with its GPU share (the config and files the router's `overrides` give), and a
recovery's fresh config still wins over the override's config while the files go with it."""
from __future__ import annotations

from model_router.serving.loader import ModelLoader

from .test_loader import RecordingControl


class FileControl(RecordingControl):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, str | None, dict | None]] = []

    def load(self, name: str, config: str | None = None, files: dict | None = None) -> None:
        self.sent.append((name, config, files))
        super().load(name, config)


def test_a_model_with_an_override_loads_with_its_config_and_files() -> None:
    control = FileControl()
    share = {"file:1/model.json": b'{"gpu_memory_utilization": 0.31}'}
    loader = ModelLoader(control, {"qwen": (4000, 22000, False), "phi": (3000, 8000, False)}, 100_000,
                         overrides=lambda name: ('{"name": "qwen"}', share) if name == "qwen" else None)
    with loader.acquire("qwen", 10):
        pass
    with loader.acquire("phi", 10):
        pass
    assert control.sent == [("qwen", '{"name": "qwen"}', share), ("phi", None, None)]
    loader.reload("qwen", '{"name": "qwen", "recovery": 1}')
    assert control.sent[-1] == ("qwen", '{"name": "qwen", "recovery": 1}', share)
