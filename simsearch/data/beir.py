"""Reading a BEIR benchmark folder: ``queries.jsonl`` and ``qrels/<split>.tsv``."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def load_queries(folder: Path) -> dict[str, str]:
    path = Path(folder) / "queries.jsonl"
    queries = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                queries[str(obj["_id"])] = str(obj["text"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path} line {line_no}: {exc}") from None
    return queries


def load_qrels(folder: Path, split: str = "test") -> dict[str, dict[str, int]]:
    """``query id -> {doc id: grade}``; the header line is optional (TREC-DL files have none)."""
    path = Path(folder) / "qrels" / f"{split}.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        for line_no, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or (line_no == 1 and not row[-1].strip().lstrip("-").isdigit()):
                continue
            if len(row) == 4:  # TREC format: query 0 doc grade
                row = [row[0], row[2], row[3]]
            if len(row) != 3:
                raise ValueError(f"{path} line {line_no}: expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels
