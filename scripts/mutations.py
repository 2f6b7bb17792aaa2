"""Mutation check: each one-line break of a feature must fail at least one of its named tests.

Every mutation in tests/mutations/*.yaml is applied to a fresh copy of the tree (tracked and untracked,
not ignored files; the working tree is never touched), its tests are run there with this venv and this
machine's prepared models, and the run must end with at least one *failed* test (an error in collection
or setup does not count: it proves nothing about the feature). Exit status 1 if any mutation survived.

    python scripts/mutations.py                  # all of them
    python scripts/mutations.py -k cache         # those whose name or file contains "cache"
    python scripts/mutations.py --list           # names and tests only
    python scripts/mutations.py --no-control     # skip the unmutated runs (quicker, but a flaky test looks caught)

Each set of tests is first run unmutated (once per set): it must pass, or its mutations count as not
caught. A run past --timeout-s is not caught either. Entry: {name, file, find, replace, tests: [pytest node
ids], why}; `find` must occur exactly once in `file` (all are checked before anything runs).
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


def check(m: Mutation) -> None:
    count = (REPO / m.file).read_text().count(m.find)
    if count != 1:
        raise SystemExit(f"{m.source}: {m.name!r}: `find` occurs {count} times in {m.file} (must be once)")


def apply(tree: Path, m: Mutation) -> None:
    path = tree / m.file
    path.write_text(path.read_text().replace(m.find, m.replace))


@dataclass(frozen=True)
class Outcome:
    failed: int = 0
    passed: int = 0
    errors: int = 0
    hung: bool = False

    def __str__(self) -> str:
        return "hung" if self.hung else f"{self.failed} failed, {self.passed} passed, {self.errors} errors"


def run_tests(tree: Path, tests: tuple[str, ...], log: Path, timeout_s: float) -> Outcome:
    """The named tests run in `tree`, as pytest's closing line counts them."""
    # Nothing inherited may point the copy back at the checkout (the launcher and tests read these).
    env = {k: v for k, v in os.environ.items() if k not in ("TMR_REPO", "TMR_SCREENSHOTS", "PYTHONPATH")}
    env.update(TMR_MODELS=os.environ.get("TMR_MODELS", str(REPO / ".cache" / "models")), PYTHONDONTWRITEBYTECODE="1")
    with log.open("w") as out:
        try:
            subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                           cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return Outcome(hung=True)
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if re.search(r" in [\d.]+s", ln)]
    closing = lines[-1] if lines else ""

    def count(word: str) -> int:
        found = re.search(rf"(\d+) {word}", closing)
        return int(found.group(1)) if found else 0

    return Outcome(count("failed"), count("passed"), count("errors?"))


def fresh_tree(tmp: Path) -> Path:
    """A copy of the tree in `tmp`, with ../shared beside it when the checkout has one (tests that read it)."""
    tree = tmp / "tree"
    copy_tree(tree)
    if (REPO.parent / "shared").is_dir():
        (tmp / "shared").symlink_to(REPO.parent / "shared")
    return tree


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", default="", help="only mutations whose name or file contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-control", action="store_true", help="skip the unmutated runs")
    ap.add_argument("--timeout-s", type=float, default=1800.0, help="one pytest run's limit")
    ap.add_argument("--logs", type=Path, default=REPO / ".run" / "mutations")
    args = ap.parse_args()
    chosen = [m for m in load_mutations() if args.k in m.name or args.k in m.source]
    for m in chosen:
        check(m)
    if args.list:
        for m in chosen:
            print(f"{m.source}: {m.name}\n    {m.file}\n    tests: {' '.join(m.tests)}")
        return 0
    args.logs.mkdir(parents=True, exist_ok=True)
    controls: dict[tuple[str, ...], Outcome] = {}
    survived = []
    for i, m in enumerate(chosen, 1):
        slug = re.sub(r"[^a-z0-9]+", "-", m.name.lower()).strip("-")[:60]
        with tempfile.TemporaryDirectory(prefix="tmr-mutation-") as tmp:
            tree = fresh_tree(Path(tmp))
            if not args.no_control and m.tests not in controls:
                controls[m.tests] = run_tests(tree, m.tests, args.logs / f"{slug}.control.log", args.timeout_s)
            control = controls.get(m.tests)
            if control is not None and (control.hung or control.failed or control.errors or not control.passed):
                print(f"[{i}/{len(chosen)}] CONTROL FAILED {m.name}: unmutated {control} "
                      f"(log {args.logs / f'{slug}.control.log'})", flush=True)
                survived.append(m)
                continue
            apply(tree, m)
            started = time.monotonic()
            outcome = run_tests(tree, m.tests, args.logs / f"{slug}.log", args.timeout_s)
        verdict = "caught" if outcome.failed else "SURVIVED"
        print(f"[{i}/{len(chosen)}] {verdict:8} {m.name}: {outcome} ({time.monotonic() - started:.0f} s; {m.source})",
              flush=True)
        if not outcome.failed:
            survived.append(m)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} mutations caught")
    for m in survived:
        print(f"  not caught: {m.name} ({m.source}; logs under {args.logs})")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
