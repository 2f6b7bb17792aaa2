"""The answers each model gave each task, as a client saw them, with what each one cost: kept in a
JSONL file so that a rerun asks only what is missing (or what changed: a task's request key)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .checks import Answer, Verdict, check
from .tasks import Task


@dataclass
class AnswerRecord:
    task: str
    model: str          # the model asked for (options.model), or the policy's name for a routed run
    key: str            # the task's request key when it was asked
    text: str = ""
    tool_calls: list[list[str]] = field(default_factory=list)  # [name, arguments JSON]
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cpu_s: float = 0.0       # CPU time of the answering engine's process(es) over the request
    latency_s: float = 0.0   # wall time of the request, as the client waited for it
    served_by: str = ""      # the decision's model
    decided_by: str = ""     # the decision's signal (a learned policy says "learned: ...")
    load_ms: float = 0.0     # a model load the answer waited for (none in a fair measure)
    decision_id: str = ""
    error: str = ""          # the request failed: the answer counts as wrong

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def verdict(self, task: Task) -> Verdict:
        if self.error:
            return Verdict(False, f"error: {self.error}")
        return check(task, Answer(self.text, tuple((n, a) for n, a in self.tool_calls)))


class AnswerStore:
    """Records by (task, model), appended as they come; the newest for a pair wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[tuple[str, str], AnswerRecord] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    r = AnswerRecord(**json.loads(line))
                except (ValueError, TypeError):  # blank, or cut short when a run was stopped mid-write
                    continue
                self.records[(r.task, r.model)] = r

    def has(self, task: Task, model: str) -> bool:
        """An answer to the task as asked now, that did not fail (a failed one is asked again)."""
        r = self.records.get((task.id, model))
        return r is not None and r.key == task.request_key() and not r.error

    def get(self, task_id: str, model: str) -> AnswerRecord | None:
        return self.records.get((task_id, model))

    def add(self, record: AnswerRecord) -> None:
        self.records[(record.task, record.model)] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")

