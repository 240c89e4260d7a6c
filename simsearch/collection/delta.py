"""The writes since the base build, in memory: an immutable state per applied batch.

Keys: the base build's documents keep their positions ``0 .. N-1``; each upserted document gets the next
key ``N, N+1, ...``, and its vectors (one per passage) the next rows of the delta's buffer. A replaced or
deleted document's key becomes *dead* (a tombstone) and never comes back. A state never changes once
made: applying a batch makes a new one that shares the append-only document list and vector buffer (rows
the old state can see are never written again), so a search that took a state sees a batch entirely or
not at all, without locks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from simsearch.collection.write_log import Batch
from simsearch.data.corpus import Document


@dataclass(frozen=True)
class WriteResult:
    """What one batch did, and the collection's sequence number after it."""

    sequence: int
    inserted: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DeltaState:
    """The delta after some batches. Documents get keys ``base_count, base_count + 1, ...`` in write order;
    their vectors (one per passage) are rows of a shared buffer, each row's document key in
    ``row_doc`` and its character span in ``row_span``."""

    sequence: int
    base_count: int
    dimension: int
    docs: list[Document]  # shared and append-only: this state reads the first `ndocs`
    buffer: np.ndarray  # shared vector rows, (capacity, dimension): this state reads the first `n`
    row_doc: np.ndarray  # shared, (capacity,): the document key of each row
    row_span: np.ndarray  # shared, (capacity, 2): each row's passage span in its document's text
    n: int = 0  # rows (passages)
    ndocs: int = 0
    dead: frozenset[int] = frozenset()  # document keys (base positions or delta keys) replaced or deleted
    live_ids: Mapping[str, int] = field(default_factory=dict)  # id -> key of ids whose version is in the delta

    @classmethod
    def empty(cls, sequence: int, base_count: int, dimension: int) -> DeltaState:
        return cls(
            sequence,
            base_count,
            dimension,
            [],
            np.zeros((64, dimension), dtype=np.float32),
            np.zeros(64, dtype=np.int64),
            np.zeros((64, 2), dtype=np.int64),
        )

    @property
    def vectors(self) -> np.ndarray:
        """Every row's vector (passages of live and dead delta documents)."""
        return self.buffer[: self.n]

    @cached_property
    def live_delta_keys(self) -> np.ndarray:
        """Keys of the delta documents that are still current, ascending."""
        keys = np.arange(self.base_count, self.base_count + self.ndocs, dtype=np.int64)
        return keys[[int(k) not in self.dead for k in keys]] if self.dead else keys

    @cached_property
    def live_rows(self) -> np.ndarray:
        """Rows (passages) of the live delta documents."""
        rows = np.arange(self.n, dtype=np.int64)
        if not self.dead:
            return rows
        live = np.isin(self.row_doc[: self.n], self.live_delta_keys)
        return rows[live]

    @cached_property
    def dead_base(self) -> np.ndarray:
        """Base positions that are gone, ascending."""
        return np.array(sorted(k for k in self.dead if k < self.base_count), dtype=np.int64)

    def doc(self, key: int) -> Document:
        return self.docs[key - self.base_count]

    def rows_of(self, key: int) -> np.ndarray:
        """The rows (passages, in order) of delta document ``key``."""
        return np.flatnonzero(self.row_doc[: self.n] == key)

    def apply(
        self, batch: Batch, base_positions: Callable[[Sequence[str]], dict[str, int]]
    ) -> tuple[DeltaState, WriteResult, list[tuple[int, Document]], list[int]]:
        """The state after ``batch``, what it did, the documents it added (with their keys) and the keys it
        made dead. ``base_positions(ids)`` looks ids up in the base build."""
        if batch.seq <= self.sequence:
            raise ValueError(f"batch {batch.seq} is not after the state's sequence {self.sequence}")
        in_base = base_positions([op.id for op in batch.ops if op.id not in self.live_ids])
        live_ids = dict(self.live_ids)
        dead = set(self.dead)
        result = WriteResult(batch.seq)
        added: list[tuple[int, Document]] = []
        killed: list[int] = []
        buffer, row_doc, row_span, n, ndocs = self.buffer, self.row_doc, self.row_span, self.n, self.ndocs

        def current(doc_id: str) -> int | None:
            if doc_id in live_ids:
                return live_ids[doc_id]
            pos = in_base.get(doc_id)
            return pos if pos is not None and pos not in dead else None

        for op in batch.ops:
            old = current(op.id)
            if old is not None:
                dead.add(old)
                killed.append(old)
                live_ids.pop(op.id, None)
            if op.op == "delete":
                (result.deleted if old is not None else result.not_found).append(op.id)
                continue
            assert op.document is not None and op.vectors is not None
            (result.replaced if old is not None else result.inserted).append(op.id)
            rows = len(op.vectors)
            while n + rows > len(buffer):  # grow into new buffers: states holding the old ones keep reading them
                grown = np.zeros((2 * len(buffer), self.dimension), dtype=np.float32)
                grown[:n] = buffer[:n]
                grown_doc = np.zeros(2 * len(buffer), dtype=np.int64)
                grown_doc[:n] = row_doc[:n]
                grown_span = np.zeros((2 * len(buffer), 2), dtype=np.int64)
                grown_span[:n] = row_span[:n]
                buffer, row_doc, row_span = grown, grown_doc, grown_span
            if len(self.docs) != ndocs:
                raise RuntimeError("a delta state was applied to twice: only the newest state may take a batch")
            key = self.base_count + ndocs
            buffer[n : n + rows] = op.vectors
            row_doc[n : n + rows] = key
            row_span[n : n + rows] = op.spans if op.spans is not None else [(0, len(op.document.text))]
            self.docs.append(op.document)
            live_ids[op.id] = key
            added.append((key, op.document))
            n += rows
            ndocs += 1
        state = DeltaState(
            batch.seq,
            self.base_count,
            self.dimension,
            self.docs,
            buffer,
            row_doc,
            row_span,
            n,
            ndocs,
            frozenset(dead),
            live_ids,
        )
        return state, result, added, killed
