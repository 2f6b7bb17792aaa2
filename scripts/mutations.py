"""Mutation check: each one-line break of a feature must fail at least one of its named tests.

Every mutation in tests/mutations/*.yaml is applied to a fresh copy of the tree (tracked and untracked,
not ignored files; the working tree is never touched), its tests are run there with this venv and this
machine's prepared models, and the run must end with at least one *failed* test (an error in collection
or setup does not count: it proves nothing about the feature). Exit status 1 if any mutation survived.

    python scripts/mutations.py                  # all of them
    python scripts/mutations.py -k cache         # those whose name or file contains "cache"
    python scripts/mutations.py --list           # names and tests only
    python scripts/mutations.py --control        # run each mutation's tests unmutated first (they must pass)

Entry: {name, file, find, replace, tests: [pytest node ids], why}; `find` must occur exactly once.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MUTATIONS_DIR = REPO / "tests" / "mutations"


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]
    why: str
    source: str


def load_mutations() -> list[Mutation]:
    found = []
    for path in sorted(MUTATIONS_DIR.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text()) or []:
            found.append(Mutation(entry["name"], entry["file"], entry["find"], entry["replace"],
                                  tuple(entry["tests"]), entry.get("why", ""), path.name))
    return found


def copy_tree(dest: Path) -> None:
    """The tree as `git status` sees it (tracked and untracked, ignored files left out)."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=REPO, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if not src.is_file():  # deleted in the working tree, still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def apply(tree: Path, m: Mutation) -> None:
    path = tree / m.file
    text = path.read_text()
    count = text.count(m.find)
    if count != 1:
        raise SystemExit(f"{m.source}: {m.name!r}: `find` occurs {count} times in {m.file} (must be once)")
    path.write_text(text.replace(m.find, m.replace))


def run_tests(tree: Path, tests: tuple[str, ...], log: Path) -> tuple[int, int, int]:
    """(failed, passed, errors) of the named tests run in `tree`."""
    env = {**os.environ, "TMR_MODELS": os.environ.get("TMR_MODELS", str(REPO / ".cache" / "models")),
           "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                       cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    tail = log.read_text(errors="replace")[-3000:]

    def count(word: str) -> int:
        found = re.findall(rf"(\d+) {word}", tail)
        return int(found[-1]) if found else 0

    return count("failed"), count("passed"), count("errors?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="", help="only mutations whose name or file contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--control", action="store_true", help="also run the tests unmutated (they must pass)")
    ap.add_argument("--logs", type=Path, default=REPO / ".run" / "mutations")
    args = ap.parse_args()
    chosen = [m for m in load_mutations() if args.k in m.name or args.k in m.source]
    if args.list:
        for m in chosen:
            print(f"{m.source}: {m.name}\n    {m.file}\n    tests: {' '.join(m.tests)}")
        return 0
    args.logs.mkdir(parents=True, exist_ok=True)
    survived = []
    for i, m in enumerate(chosen, 1):
        slug = re.sub(r"[^a-z0-9]+", "-", m.name.lower()).strip("-")[:60]
        with tempfile.TemporaryDirectory(prefix="tmr-mutation-") as tmp:
            tree = Path(tmp)
            copy_tree(tree)
            if args.control:
                failed, passed, errors = run_tests(tree, m.tests, args.logs / f"{slug}.control.log")
                if failed or errors or not passed:
                    print(f"[{i}/{len(chosen)}] CONTROL FAILED {m.name}: {failed} failed, {errors} errors "
                          f"unmutated (log {args.logs / f'{slug}.control.log'})", flush=True)
                    survived.append(m)
                    continue
            apply(tree, m)
            started = time.monotonic()
            failed, passed, errors = run_tests(tree, m.tests, args.logs / f"{slug}.log")
        took = time.monotonic() - started
        verdict = "caught" if failed else "SURVIVED"
        print(f"[{i}/{len(chosen)}] {verdict:8} {m.name}: {failed} failed, {passed} passed, {errors} errors "
              f"({took:.0f} s; {m.source})", flush=True)
        if not failed:
            survived.append(m)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations caught")
    for m in survived:
        print(f"  not caught: {m.name} ({m.source}; log under {args.logs})")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
