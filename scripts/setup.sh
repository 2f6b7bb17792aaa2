#!/usr/bin/env bash
# Install everything Triton Model Router needs, from this repo's own files. Idempotent: a second
# run only does what is missing. Honors VENV (default .venv) and TMR_MODELS (default .cache/models).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

# Debian packages: libb64 for perf_analyzer; espeak-ng (speech, phoneme timing) and tesseract with
# the Indian language packs (OCR); chromium for the playground's browser tests; redis-server for the
# response cache's tests. Video decoding needs none: PyAV's wheel carries FFmpeg.
APT_PKGS=(libb64-0d espeak-ng tesseract-ocr tesseract-ocr-hin tesseract-ocr-mar tesseract-ocr-tam tesseract-ocr-tel
          tesseract-ocr-ben tesseract-ocr-guj tesseract-ocr-kan tesseract-ocr-mal tesseract-ocr-pan
          chromium redis-server)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
    || echo "setup: warning: could not install ${missing[*]} (speech, OCR and perf_analyzer need them)" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.requirements.sha"
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages (requirements.txt)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi

TQDM_DISABLE=1 "$VENV/bin/python" scripts/prepare_models.py
