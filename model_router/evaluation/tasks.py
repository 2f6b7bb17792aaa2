"""The routing-evaluation task set: tasks we wrote, each with a verifiable answer, a labeled language
and complexity, and the split it belongs to (the policy learns from `learn`, is graded on `heldout`)."""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from ..contract.request import RouteOptions
from ..contract.sampling import SamplingParams
from ..contract.tools import ResponseFormat, Tool
from ..vocabulary import Complexity, Language

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
Kind = Literal["factual", "math", "code", "json", "tool"]
KINDS: tuple[str, ...] = get_args(Kind)
Split = Literal["learn", "heldout"]
SPLITS: tuple[str, ...] = get_args(Split)
# Greedy tokens an answer may take: room for a short answer, a short worked solution or one function.
MAX_TOKENS: dict[str, int] = {"factual": 48, "math": 160, "code": 256, "json": 128, "tool": 128}


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    kind: Kind
    language: Language
    romanized: bool = False  # Hindi in Latin letters
    complexity: Complexity
    prompt: str = Field(min_length=1)
    check: dict[str, Any]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    response_format: dict[str, Any] | None = None
    split: Split = "learn"

    @property
    def form(self) -> str:
        """What the request asks of the model's output: tools to call, JSON, or text."""
        return "tools" if self.tools else "json" if self.response_format else "text"

    @property
    def label(self) -> str:
        """The language as reported: romanized Hindi apart from Hindi in Devanagari."""
        return "hi-latn" if self.romanized else self.language

    def options(self, **extra: Any) -> RouteOptions:
        """The router options that ask one greedy, uncached answer to this task (`extra`: model, prefer...)."""
        return RouteOptions(sampling_parameters=SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS[self.kind]),
                            cache="off", tools=[Tool.model_validate(t) for t in self.tools],
                            response_format=ResponseFormat.model_validate(self.response_format)
                            if self.response_format else None, **extra)

    def request_key(self) -> str:
        """A digest of what is asked: an answer kept on disk stands for this task while it matches."""
        body = json.dumps([self.prompt, self.options().wire()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()[:16]


def _order(task_id: str) -> str:
    return hashlib.sha256(task_id.encode()).hexdigest()


def assign_splits(tasks: list[Task]) -> list[Task]:
    """Half of each (kind, language, complexity) group to each split, in an order fixed by the ids'
    digests; a group's odd task out goes to the splits in turn (so a group of one is graded as often as
    learned from), and adding tasks to one group never moves another group's."""
    groups: dict[tuple[str, str, str], list[Task]] = defaultdict(list)
    for t in tasks:
        groups[(t.kind, t.label, t.complexity)].append(t)
    split: dict[str, str] = {}
    turn = 0
    for key in sorted(groups):
        members = sorted(groups[key], key=lambda t: _order(t.id))
        for n, t in enumerate(members):
            if n == len(members) - 1 and len(members) % 2:
                split[t.id], turn = SPLITS[turn], 1 - turn
            else:
                split[t.id] = SPLITS[n % 2]
    return [t.model_copy(update={"split": split[t.id]}) for t in tasks]


def load_tasks(folder: Path = TASKS_DIR) -> list[Task]:
    """Every task in `folder`/*.jsonl, ids unique, with its split."""
    tasks: list[Task] = []
    for path in sorted(folder.glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    tasks.append(Task.model_validate(json.loads(line)))
                except ValueError as exc:
                    raise ValueError(f"{path.name}:{n}: {exc}") from None
    seen: set[str] = set()
    for t in tasks:
        if t.id in seen:
            raise ValueError(f"task id {t.id!r} appears twice")
        seen.add(t.id)
    return assign_splits(tasks)


def sample(tasks: list[Task], limit: int | None) -> list[Task]:
    """The first `limit` tasks (all when None) in a fixed interleaving over kinds and splits, so that a
    quick run, or a run cut short, still sees every kind and both splits."""
    limit = len(tasks) if limit is None else min(limit, len(tasks))
    groups: dict[tuple[str, str], list[Task]] = defaultdict(list)
    for t in sorted(tasks, key=lambda t: _order(t.id)):
        groups[(t.kind, t.split)].append(t)
    order = [groups[k] for k in sorted(groups)]
    picked: list[Task] = []
    while len(picked) < limit:
        for g in order:
            if g and len(picked) < limit:
                picked.append(g.pop(0))
    return picked
