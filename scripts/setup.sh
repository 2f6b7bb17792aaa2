#!/usr/bin/env bash
# Install everything Triton Model Router needs, from this repo's own files. Idempotent: a second
# run only does what is missing. Honors VENV (default .venv) and TMR_MODELS (default .cache/models).
#   scripts/setup.sh                  everything
#   scripts/setup.sh --llamacpp-only  only the llama.cpp binding, into a venv that has requirements.txt
#                                     (deploy/Dockerfile.cpu: a layer of its own that code changes keep)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
case "${1:-}" in
  "") only_llamacpp=0 ;;
  --llamacpp-only) only_llamacpp=1 ;;
  *) echo "usage: scripts/setup.sh [--llamacpp-only]" >&2; exit 2 ;;
esac

# llama-cpp-python, the llamacpp backend's binding. PyPI has it as an sdist only, and a wheel built
# elsewhere (pip's cache, a wheel folder) may carry other CPU flags: it is compiled here from the sdist
# (--no-binary, --no-cache-dir) with the pin and the CMake flags of requirements-llamacpp.txt, its
# dependencies from the index as usual with numpy held at requirements.txt's pin. A stamp in the venv
# records the pin and the flags built: a second run skips the build, a changed pin or flag redoes it.
install_llamacpp() {
  local file=requirements-llamacpp.txt stamp="$VENV/.llamacpp.stamp" pin flags want installed start
  pin=$(grep -m1 -E '^llama-cpp-python==' "$file" | cut -d' ' -f1 || true)
  flags=$(sed -n 's/^# CMAKE_ARGS: *//p' "$file")
  if [ -z "$pin" ] || [ -z "$flags" ]; then
    echo "setup: $file must pin llama-cpp-python== and give '# CMAKE_ARGS: ...'" >&2
    exit 1
  fi
  want="$pin CMAKE_ARGS=$flags"
  installed=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))' \
    2>/dev/null || true)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ "llama-cpp-python==$installed" = "$pin" ]; then
    return 0
  fi
  local tools=()
  command -v g++ >/dev/null || tools+=(g++)
  command -v cmake >/dev/null || tools+=(cmake)
  if ((${#tools[@]})); then
    echo "setup: apt-get install ${tools[*]} (to compile llama-cpp-python)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tools[@]}" >/dev/null
  fi
  echo "setup: building $pin from source (CMAKE_ARGS=$flags), several CPU-minutes"
  start=$SECONDS
  rm -f "$stamp"
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$VENV/bin/python" -m pip install -q --no-cache-dir --no-binary llama-cpp-python --force-reinstall --no-deps "$pin"
  "$VENV/bin/python" -m pip install -q -r "$file" -c <(grep -E '^numpy==' requirements.txt)
  "$VENV/bin/python" -c "import llama_cpp"
  echo "$want" > "$stamp"
  echo "setup: built $pin in $((SECONDS - start)) s"
}

if ((only_llamacpp)); then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: no venv at $VENV (--llamacpp-only builds into an existing one)" >&2
    exit 1
  fi
  install_llamacpp
  exit 0
fi

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
install_llamacpp

TQDM_DISABLE=1 "$VENV/bin/python" scripts/prepare_models.py
