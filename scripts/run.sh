#!/usr/bin/env bash
# The one command that runs the system: set up what is missing, then start Triton (CPU default).
# Extra arguments go to scripts/serve.py (e.g. --http-port 9000, --cache redis://HOST:6379/0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${VENV:-.venv}/bin/python" scripts/serve.py "$@"
