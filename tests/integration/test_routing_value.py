"""The routing evaluation end to end on the real server: every model answers a dozen tasks through the
router (each answer served by the model asked for, its engine's CPU read from /proc), the policies are
scored, the router answers some held-out tasks live (with the shipped learned policy) exactly as its
decisions were computed, and the report, the plot and the learned policy are written; a rerun resumes
from the answers on disk instead of asking again."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from launcher import TritonServer
from model_router import REPO_ROOT
from model_router.routing.learned import LearnedPolicy

from .conftest import start_server, stop_server

pytestmark = pytest.mark.integration
HANG_S = 3600  # a hang bound, not a speed: 36 answers and 4 live ones on a slow machine take minutes


@pytest.fixture(scope="module")
def server() -> Iterator[TritonServer]:
    """A server of its own that routes with the shipped learned policy, as the run command's does."""
    srv = start_server(["query_classifier", "router"], env={"TMR_LEARNED_POLICY": "shipped"})
    yield srv
    stop_server(srv)


def evaluate(server: TritonServer, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "scripts/eval_routing_value.py", "--url", server.grpc_url, "--out", str(out), *extra]
    # The script imports this tree's package, not whichever one the venv points at.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=HANG_S, env=env)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run


def test_a_routed_run_over_a_dozen_tasks_writes_a_report(server: TritonServer, tmp_path: Path) -> None:
    out = tmp_path / "routing_value"
    run = evaluate(server, out, "--limit", "12", "--live", "4", "--server-policy", "shipped")
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    models = {a["model"] for a in answers}
    assert len(models) == 3 and len(answers) == 12 * 3, models
    # Each answer came from the model asked for, as the router's decision told the client.
    assert all(a["served_by"] == a["model"] and not a["error"] for a in answers), answers
    # Each model's engine CPU, read from its own processes, is its own: none is credited to another.
    assert all(sum(a["cpu_s"] for a in answers if a["model"] == m) > 0 for m in models), answers
    assert all(a["completion_tokens"] > 0 for a in answers)

    report = json.loads((out / "report.json").read_text())
    policies = {s["policy"] for s in report["scores"]}
    assert models <= policies and "oracle" in policies, policies
    assert {f"router {p} (hand-set)" for p in ("cost", "balanced", "quality")} <= policies
    assert {f"router balanced ({v})" for v in ("labels", "no_complexity", "embedding", "both")} <= policies
    assert report["tasks"] == {"learn": 6, "heldout": 6} and set(report["goals"]) and report["kept"]
    live = [json.loads(line) for line in (out / "live.jsonl").read_text().splitlines()]
    assert report["live"]["tasks"] == len(live) == 4 and all(r["served_by"] in models for r in live), live
    # Live, every model loaded as the computed decisions assume: the router chose as computed.
    assert report["live"]["same_model"] == 1.0, report["live"]
    assert (out / "cost_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "APGR" in run.stdout and "oracle" in run.stdout
    learned = LearnedPolicy.load(out / "learned_policy.json")
    assert learned is not None and set(learned.cells or learned.weights) == models

    kept = (out / "answers.jsonl").read_text()
    evaluate(server, out, "--limit", "12", "--live", "0")
    assert (out / "answers.jsonl").read_text() == kept, "a rerun asked again what was on disk"
