"""Labeled queries: our own written corpus (corpus/*.tsv) and JSONL sets such as the dev set."""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "corpus"
HELDOUT_PERCENT = 40  # of the dev set, never trained on


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    attachments: tuple[str, ...]
    use_case: str = ""
    language: str = ""
    complexity: str = ""


def load_corpus(paths: list[Path] | None = None) -> list[Query]:
    rows = []
    for path in paths or sorted(DATA_DIR.glob("corpus_*.tsv")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.startswith("#"):
                continue
            uc, att, cx, lang, text = line.split("\t", 4)
            rows.append(Query(f"{path.stem}:{n}", text, tuple(a for a in att.split(",") if a and a != "-"), uc, lang, cx))
    return rows


def load_jsonl(path: Path) -> list[Query]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            rows.append(Query(str(r["id"]), r.get("text", ""), tuple(r.get("attachments") or ()), r.get("use_case", ""),
                              r.get("language", ""), r.get("complexity", "")))
    return rows


def is_heldout(query_id: str) -> bool:
    """Stable split by id hash: the same queries are held out on every machine and every run."""
    return zlib.crc32(query_id.encode()) % 100 < HELDOUT_PERCENT


def split_dev(rows: list[Query]) -> tuple[list[Query], list[Query]]:
    train = [r for r in rows if not is_heldout(r.id)]
    heldout = [r for r in rows if is_heldout(r.id)]
    return train, heldout
