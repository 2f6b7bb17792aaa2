"""Read the text in an image with Tesseract (Debian tesseract-ocr and its Indian language packs).

The CPU profile has no vision-language model with packaged weights, so "look at this image"
degrades to reading the text in it; the router says so in its decision.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import warnings

from ..errors import InputError

# Tesseract's traineddata per language; English is always read too (signs mix scripts).
TESSERACT_LANGS = {"en": "eng", "hi": "hin", "mr": "mar", "ta": "tam", "te": "tel", "bn": "ben", "gu": "guj",
                   "kn": "kan", "ml": "mal", "pa": "pan"}
MAX_PIXELS = 40_000_000
MAX_SIDE = 3000  # larger images are scaled down first: Tesseract's time grows with the area


def decode_image(data: bytes, field: str = "image"):
    """A Pillow image in RGB, or InputError naming `field` and the limit it broke."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise InputError(field, f"{img.width}x{img.height} exceeds the limit of {MAX_PIXELS} pixels")
            img.load()
    except InputError:
        raise
    except Exception as exc:  # Pillow names what is wrong with the bytes
        raise InputError(field, f"cannot decode ({exc.__class__.__name__}: {str(exc)[:120]}); "
                                "send PNG, JPEG, WebP, BMP, GIF or TIFF") from None
    img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE))
    return img


def tesseract_langs(language: str) -> str:
    lang = TESSERACT_LANGS.get(language, "eng")
    return "eng" if lang == "eng" else f"eng+{lang}"


def read_text(data: bytes, language: str = "en", timeout_s: float = 60.0, field: str = "image") -> str:
    """The text Tesseract reads in the image, lines joined by newlines ("" when there is none)."""
    exe = shutil.which("tesseract")
    if exe is None:
        raise RuntimeError("tesseract is not installed (apt-get install tesseract-ocr; scripts/setup.sh does it)")
    img = decode_image(data, field)
    png = io.BytesIO()
    img.convert("L").save(png, "PNG")
    proc = subprocess.run([exe, "stdin", "stdout", "-l", tesseract_langs(language), "--psm", "3"],
                          input=png.getvalue(), capture_output=True, timeout=timeout_s, check=False,
                          env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        raise RuntimeError(f"tesseract failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
    lines = (line.strip() for line in proc.stdout.decode("utf-8", "replace").splitlines())
    return "\n".join(line for line in lines if line)
