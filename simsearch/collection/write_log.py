"""The write-ahead log of a collection: every acknowledged write batch, durable before it is answered.

SQLite in WAL mode with ``synchronous=FULL``: a batch is one transaction, fsynced at commit, so a write
that was acknowledged survives ``kill -9`` and power loss; readers never block the writer. Each batch
gets the next sequence number; rows keep the documents, their vectors (float32 bytes, never pickles)
and deletes. Several processes may share one log (the service, an offline upsert job): a batch is
appended with ``BEGIN IMMEDIATE``, which serialises writers, and each process applies every batch in
sequence order. Batches a compacted build already holds are pruned once no kept build needs them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simsearch.data.corpus import Document

_SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS writes (
    seq      INTEGER NOT NULL,            -- the batch's sequence number
    ord      INTEGER NOT NULL,            -- position in the batch
    op       TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    id       TEXT NOT NULL,
    title    TEXT,
    text     TEXT,
    metadata TEXT,                        -- JSON object or NULL
    vector   BLOB,                        -- float32, one row of the model's dimension per passage
    spans    TEXT,                        -- JSON [[start, end], ...] of the passages; NULL: one, the whole text
    PRIMARY KEY (seq, ord)
);
"""


@dataclass(frozen=True)
class WriteOp:
    op: Literal["upsert", "delete"]
    id: str
    document: Document | None = None
    vectors: np.ndarray | None = None  # (passages, dimension)
    spans: list[tuple[int, int]] | None = None  # the passages' spans; None: one vector over the whole text


@dataclass(frozen=True)
class Batch:
    seq: int
    ops: list[WriteOp]


class LogMismatchError(RuntimeError):
    """The log was written for another model (dimension) than the one opening it."""


class WriteLog:
    """One collection's log file (see the module docstring). Thread-safe within a process."""

    def __init__(self, path: Path, *, dimension: int, model_sha256: str, readonly: bool = False) -> None:
        self.path = Path(path)
        self.dimension = dimension
        self.readonly = readonly
        self._lock = threading.Lock()
        if readonly:  # a replica: reads the writer's batches, never creates or changes anything
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None, timeout=30)
            self._check(
                dict(self._conn.execute("SELECT key, value FROM info WHERE key != 'last_seq'")), dimension, model_sha256
            )
            return
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(writes)")}
        if "spans" not in columns:  # a log written before passages: its rows are single vectors
            self._conn.execute("ALTER TABLE writes ADD COLUMN spans TEXT")
        info = dict(self._conn.execute("SELECT key, value FROM info WHERE key != 'last_seq'").fetchall())
        expected = {"dimension": str(dimension), "model_sha256": model_sha256}
        if not info:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT OR IGNORE INTO info VALUES (?, ?)", list(expected.items()))
                self._conn.execute("COMMIT")
            info = dict(self._conn.execute("SELECT key, value FROM info WHERE key != 'last_seq'").fetchall())
        self._check(info, dimension, model_sha256)

    def _check(self, info: dict[str, str], dimension: int, model_sha256: str) -> None:
        if info != {"dimension": str(dimension), "model_sha256": model_sha256}:
            self._conn.close()
            raise LogMismatchError(
                f"write log {self.path} holds writes encoded by model {info.get('model_sha256', '?')[:12]} "
                f"({info.get('dimension')}-d), not by the configured {model_sha256[:12]} ({dimension}-d)"
            )

    def changed_by_others(self) -> bool:
        """Whether another connection committed to the log since the last call (SQLite's ``data_version``:
        no table is read, so the background loop can ask every collection every second)."""
        with self._lock:
            (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        changed = version != getattr(self, "_seen_version", None)
        self._seen_version = version
        return changed

    def last_seq(self) -> int:
        """The newest batch's sequence number (kept when batches are pruned: numbers are never reused)."""
        with self._lock:
            return self._last()

    def _last(self) -> int:
        row = self._conn.execute("SELECT value FROM info WHERE key = 'last_seq'").fetchone()
        return int(row[0]) if row else 0

    def append(self, ops: Sequence[WriteOp], *, after: int) -> tuple[list[Batch], int]:
        """Write ``ops`` as one durable batch; return the batches other writers appended after ``after``
        (which the caller must apply first) and the new batch's sequence number."""
        if self.readonly:
            raise PermissionError(f"write log {self.path} is open read-only")
        rows: list[tuple[Any, ...]] = []
        for i, op in enumerate(ops):
            doc, vec = op.document, op.vectors
            if op.op == "upsert":
                assert doc is not None and vec is not None
                if vec.ndim != 2 or vec.shape[1] != self.dimension or not len(vec):
                    raise ValueError(f"vector of shape {vec.shape}; the collection holds {self.dimension}-d vectors")
                if op.spans is not None and len(op.spans) != len(vec):
                    raise ValueError(f"document {op.id!r}: {len(vec)} vectors for {len(op.spans)} passages")
                meta = json.dumps(doc.metadata, ensure_ascii=False) if doc.metadata is not None else None
                spans = json.dumps([list(s) for s in op.spans]) if op.spans is not None else None
                blob = np.asarray(vec, "<f4").tobytes()
                rows.append((i, op.op, op.id, doc.title, doc.text, meta, blob, spans))
            else:
                rows.append((i, op.op, op.id, None, None, None, None, None))
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                others = self._read(after)
                seq = self._last() + 1
                self._conn.executemany(
                    "INSERT INTO writes (seq, ord, op, id, title, text, metadata, vector, spans) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(seq, *r) for r in rows],
                )
                self._conn.execute("INSERT OR REPLACE INTO info VALUES ('last_seq', ?)", (str(seq),))
                self._conn.execute("COMMIT")  # synchronous=FULL: on disk when this returns
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return others, seq

    def read_since(self, seq: int) -> list[Batch]:
        """Every batch after ``seq``, in order."""
        with self._lock:
            return self._read(seq)

    def _read(self, seq: int) -> list[Batch]:
        rows = self._conn.execute(
            "SELECT seq, op, id, title, text, metadata, vector, spans FROM writes WHERE seq > ? ORDER BY seq, ord",
            (seq,),
        ).fetchall()
        batches: dict[int, list[WriteOp]] = {}
        for s, op, doc_id, title, text, meta, vector, spans in rows:
            if op == "upsert":
                doc = Document(
                    id=doc_id, text=text, title=title or "", metadata=json.loads(meta) if meta is not None else None
                )
                vec = np.frombuffer(vector, dtype="<f4").astype(np.float32).reshape(-1, self.dimension)
                parts = [tuple(p) for p in json.loads(spans)] if spans is not None else None
                batches.setdefault(s, []).append(WriteOp("upsert", doc_id, doc, vec, parts))
            else:
                batches.setdefault(s, []).append(WriteOp("delete", doc_id))
        return [Batch(s, ops) for s, ops in batches.items()]

    def prune(self, upto: int) -> int:
        """Drop batches with sequence numbers up to ``upto`` (already in every kept build); return rows dropped."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            cursor = self._conn.execute("DELETE FROM writes WHERE seq <= ?", (upto,))
            self._conn.execute("COMMIT")
        return int(cursor.rowcount)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            batches, rows = self._conn.execute("SELECT COUNT(DISTINCT seq), COUNT(*) FROM writes").fetchone()
        return {"batches": int(batches), "rows": int(rows)}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
