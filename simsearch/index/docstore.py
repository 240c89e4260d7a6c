"""The document store: SQLite, one row per document, keyed by its position in the vector index."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from simsearch.data.corpus import Document

_SCHEMA = """
CREATE TABLE documents (
    pos      INTEGER PRIMARY KEY,   -- row number in the vector index
    id       TEXT NOT NULL UNIQUE,
    title    TEXT NOT NULL,
    text     TEXT NOT NULL,
    metadata TEXT                   -- JSON object or NULL
);
"""


class DocStoreWriter:
    """Appends documents in index order; used only while building a new index folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(self.path)
        # The file lives in a private temporary folder until the build succeeds, so durability comes
        # from the final fsync and rename, not from a journal.
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.executescript(_SCHEMA)
        self._count = 0

    def add(self, docs: Iterable[Document]) -> None:
        rows = []
        for doc in docs:
            meta = json.dumps(doc.metadata, ensure_ascii=False) if doc.metadata is not None else None
            rows.append((self._count, doc.id, doc.title, doc.text, meta))
            self._count += 1
        self._conn.executemany("INSERT INTO documents VALUES (?, ?, ?, ?, ?)", rows)

    def close(self) -> int:
        self._conn.commit()
        self._conn.execute("VACUUM")
        self._conn.close()
        return self._count


class DocStore:
    """Read-only access, safe to share between the threads that serve requests."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"document store {self.path} does not exist")
        uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            (self._count,) = self._conn.execute("SELECT COUNT(*) FROM documents").fetchone()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValueError(f"document store {self.path} is not a valid database: {exc}") from exc

    def __len__(self) -> int:
        return int(self._count)

    def get(self, positions: Sequence[int]) -> list[Document]:
        """Documents at these index positions, in the same order (positions must exist)."""
        if not positions:
            return []
        wanted = [int(p) for p in positions]
        marks = ",".join("?" * len(set(wanted)))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT pos, id, title, text, metadata FROM documents WHERE pos IN ({marks})",
                sorted(set(wanted)),
            ).fetchall()
        by_pos = {
            pos: Document(id=i, title=t, text=x, metadata=json.loads(m) if m is not None else None)
            for pos, i, t, x, m in rows
        }
        missing = [p for p in wanted if p not in by_pos]
        if missing:
            raise KeyError(f"positions not in the document store: {missing[:5]}")
        return [by_pos[p] for p in wanted]

    def positions_of(self, ids: Sequence[str]) -> dict[str, int]:
        """Positions of those of ``ids`` that are in the store."""
        found: dict[str, int] = {}
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 500):  # SQLite limits the variables of one statement
            part = wanted[start : start + 500]
            with self._lock:
                rows = self._conn.execute(
                    f"SELECT id, pos FROM documents WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchall()
            found.update({i: int(p) for i, p in rows})
        return found

    def iter_documents(self, chunk: int = 1000) -> Iterator[tuple[int, Document]]:
        """Every document with its position, in position order, read in chunks."""
        for start in range(0, self._count, chunk):
            positions = list(range(start, min(start + chunk, self._count)))
            yield from zip(positions, self.get(positions), strict=True)

    def metadata(self) -> list[dict | None]:
        """Every document's metadata in position order (for the filter columns)."""
        with self._lock:
            rows = self._conn.execute("SELECT metadata FROM documents ORDER BY pos").fetchall()
        return [json.loads(m) if m is not None else None for (m,) in rows]

    def ids(self) -> list[str]:
        """All document ids in index order."""
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT id FROM documents ORDER BY pos")]

    def close(self) -> None:
        with self._lock:  # never under a read running on another thread
            self._conn.close()


class InMemoryStore:
    """Documents held in a list, keyed by position: the document store of views built in memory
    (benchmarks over arrays, tests)."""

    def __init__(self, docs: Sequence[Document]) -> None:
        self.docs = list(docs)

    def __len__(self) -> int:
        return len(self.docs)

    def get(self, positions: Sequence[int]) -> list[Document]:
        return [self.docs[int(p)] for p in positions]
