#!/usr/bin/env bash
# The integration and browser tests on a CPU harsher than CI's: a test that passes only on a fast or
# idle machine fails here. After ./scripts/test.sh has set up once.
#   scripts/test_under_load.sh one-core [pytest args]   # every process pinned to CPU 0 (taskset)
#   scripts/test_under_load.sh hog [pytest args]        # beside one busy loop per core, started before, stopped after
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
mode=${1:?"usage: $0 one-core|hog [pytest args]"}
shift
tests=(tests/integration tests/browser)
case "$mode" in
  one-core)
    exec taskset -c 0 "$PY" -m pytest -q -rs "${tests[@]}" "$@" ;;
  hog)
    hogs=()
    for _ in $(seq "$(nproc)"); do
      "$PY" -c "while True: pass" &
      hogs+=($!)
    done
    trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
    "$PY" -m pytest -q -rs "${tests[@]}" "$@" ;;
  *)
    echo "unknown mode $mode: one-core or hog" >&2
    exit 2 ;;
esac
