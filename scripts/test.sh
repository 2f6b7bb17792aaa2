#!/usr/bin/env bash
# The one command that runs every test: set up what is missing, then unit + integration tests.
# Extra arguments go to pytest (e.g. -k router, -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# -rs: every skipped test is named with its reason in the summary, so that a skip is never silent.
exec "${VENV:-.venv}/bin/python" -m pytest -q -rs "$@"
