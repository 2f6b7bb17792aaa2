"""Refresh README's pictures of the playground (docs/screenshots/*.png), on purpose.

The browser tests take them as they drive the page; a plain test run leaves them under .run/screenshots
(ignored), so that it leaves a clone clean. This runs those tests with their screenshots pointed at
docs/screenshots: they start what they need as in any test run (a tritonserver with the router and the
LLM, the OpenAI front on a free port, Debian's Chromium driven by Playwright).

    .venv/bin/python scripts/screenshots.py            # all of them
    .venv/bin/python scripts/screenshots.py -k ocr     # those of the tests whose name matches
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEST = REPO / "docs" / "screenshots"
TESTS = "tests/browser/test_playground.py"  # the tests that take the screenshots


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="", help="only the tests whose name matches (pytest -k)")
    args = ap.parse_args()
    started = time.time()
    env = {**os.environ, "TMR_SCREENSHOTS": str(DEST)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TESTS,
               *(["-k", args.k] if args.k else [])]
    rc = subprocess.run(command, cwd=REPO, env=env).returncode
    fresh = sorted(p.relative_to(REPO) for p in DEST.glob("*.png") if p.stat().st_mtime >= started)
    print("refreshed:", *([f"  {p}" for p in fresh] or ["  none"]), sep="\n")
    if rc:
        print(f"the browser tests failed (exit {rc}): the pictures they did not reach are as they were")
    return rc


if __name__ == "__main__":
    sys.exit(main())
