"""The embedded collection: FAISS and SQLite in-process. The published build is the base segment; writes
go to the write-ahead log (durable before they are acknowledged) and to an in-memory delta searched
exactly; a search takes one :class:`~simsearch.collection.view.CollectionView` and keeps it.

    indexes/<name> -> <name>@<build>/      the base: immutable, published atomically (simsearch.index)
    indexes/<name>.writes.sqlite           the log (SQLite WAL), shared by every process of the collection

Opening replays the log's batches after the base's sequence number; :meth:`refresh` applies batches
other processes appended since (an offline upsert job, another writer). Compaction
(simsearch.collection.compact) folds the log into a new build through the same atomic publish.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.api.spec import CollectionSpec
from simsearch.collection.base import Score
from simsearch.collection.delta import DeltaState, WriteResult
from simsearch.collection.view import BaseSegment, CollectionView
from simsearch.collection.write_log import Batch, WriteLog, WriteOp
from simsearch.data.corpus import Document
from simsearch.index import layout
from simsearch.index.manifest import CurInfo, FusionInfo, Manifest, ModelInfo, RerankInfo
from simsearch.index.open import LoadedIndex, open_index
from simsearch.lexical import LexicalIndex
from simsearch.models.files import display_name
from simsearch.text.passages import Span

log = logging.getLogger(__name__)


class ReadOnlyError(RuntimeError):
    """Writes to a collection opened read-only."""


def upsert_ops(docs: Sequence[Document], vectors: np.ndarray, spans: Sequence[Sequence[Span]] | None) -> list[WriteOp]:
    """One write per document, holding all its passages' vectors (checked to add up before anything is written)."""
    counts = [len(s) for s in spans] if spans is not None else [1] * len(docs)
    if spans is not None and len(spans) != len(docs):
        raise ValueError(f"{len(docs)} documents and {len(spans)} lists of passages")
    if sum(counts) != len(vectors):
        raise ValueError(f"{len(docs)} documents of {sum(counts)} passages and {len(vectors)} vectors")
    ops, row = [], 0
    for i, (doc, count) in enumerate(zip(docs, counts, strict=True)):
        own = [tuple(s) for s in spans[i]] if spans is not None else None
        ops.append(WriteOp("upsert", doc.id, doc, np.asarray(vectors[row : row + count]), own))  # type: ignore[arg-type]
        row += count
    return ops


class EmbeddedCollection:
    """A base build plus its write log. ``writable=False`` opens without a log of its own (a replica on a
    read-only volume): it serves the base and the batches already in an existing log, and refuses writes."""

    backend = "embedded"

    def __init__(self, index: LoadedIndex, *, writable: bool = True, work_dir: Path | None = None) -> None:
        self.index = index
        self.name = index.name
        self.writable = writable
        self.base = BaseSegment(index)
        m = index.manifest
        self._write_lock = threading.Lock()
        log_path = layout.write_log(index.path.parent, self.name)
        self.log: WriteLog | None = None
        if writable or log_path.exists():
            self.log = WriteLog(
                log_path, dimension=m.model.dimension, model_sha256=m.model.sha256, readonly=not writable
            )
        self.lexical: LexicalIndex | None = None
        lexical_folder = index.path / layout.LEXICAL_DIR
        if m.lexical is not None:
            work_root = work_dir or (index.path.parent if writable else Path(tempfile.gettempdir()))
            self.lexical = LexicalIndex.open_writable(lexical_folder, work_root, m.lexical.analyser)
        self._state = DeltaState.empty(m.sequence, m.count, m.model.dimension)
        self._view = CollectionView(self.name, self.base, self._state, self._lexical_searcher())
        self.refresh()

    @classmethod
    def open(cls, path: Path, *, verify: bool = True, writable: bool = True) -> EmbeddedCollection:
        index = open_index(path, verify=verify)
        try:
            return cls(index, writable=writable)
        except BaseException:
            index.close()
            raise

    def _lexical_searcher(self) -> Any:
        return self.lexical.searcher() if self.lexical is not None else None

    @property
    def model(self) -> ModelInfo:
        """The model that encoded the collection (new documents must be encoded by it too)."""
        return self.index.manifest.model

    @property
    def build_id(self) -> str:
        return self.index.manifest.build_id

    # -- reading -------------------------------------------------------------------------------------
    def view(self) -> CollectionView:
        """The current state: every acknowledged write of this process, and others' up to the last refresh."""
        return self._view

    @property
    def sequence(self) -> int:
        return self._state.sequence

    def uncompacted(self) -> int:
        """Documents written since the base build (upserts still live)."""
        return len(self._state.live_delta_keys) + len(self._state.dead_base)

    # -- writing -------------------------------------------------------------------------------------
    def upsert(
        self, docs: Sequence[Document], vectors: np.ndarray, spans: Sequence[Sequence[Span]] | None = None
    ) -> WriteResult:
        """Insert or replace ``docs`` as one batch: one vector each from the collection's model, or with
        ``spans`` the vectors of each document's passages, in order (a document and all its passages are
        written, replaced and deleted together)."""
        return self._write(upsert_ops(docs, vectors, spans))

    def delete(self, ids: Sequence[str]) -> WriteResult:
        return self._write([WriteOp("delete", i) for i in ids])

    def _write(self, ops: list[WriteOp]) -> WriteResult:
        if not self.writable or self.log is None:
            raise ReadOnlyError(f"collection {self.name!r} is open read-only here: send writes to the writer")
        if not ops:
            return WriteResult(self.sequence)
        with self._write_lock:
            others, seq = self.log.append(ops, after=self._state.sequence)  # durable from here on
            for batch in others:
                self._apply(batch)
            return self._apply(Batch(seq, ops))

    def pending(self) -> bool:
        """Whether another process may have appended to the log since the last look (cheap: see
        :meth:`WriteLog.changed_by_others`)."""
        return self.log is not None and self.log.changed_by_others()

    def refresh(self) -> int:
        """Apply the batches other processes appended to the log since this one last looked; return how many."""
        if self.log is None:
            return 0
        with self._write_lock:
            batches = self.log.read_since(self._state.sequence)
            for batch in batches:
                self._apply(batch)
        return len(batches)

    def _apply(self, batch: Batch) -> WriteResult:
        state, result, added, killed = self._state.apply(batch, self.index.store.positions_of)
        searcher = self._lexical_searcher()
        if self.lexical is not None and (added or killed):
            searcher = self.lexical.apply([(key, doc.content()) for key, doc in added], killed)
        self._state = state
        self._view = CollectionView(self.name, self.base, state, searcher)  # one assignment: atomic for readers
        return result

    @property
    def spec(self) -> CollectionSpec | None:
        return self.index.manifest.spec

    @property
    def fusion(self) -> FusionInfo | None:
        return self.index.manifest.fusion

    @property
    def rerank(self) -> RerankInfo | None:
        return self.index.manifest.rerank

    @property
    def cur_info(self) -> CurInfo | None:
        return self.index.manifest.cur

    def compact(self, cross_score: Score | None, cross_sha256: str | None) -> bool:
        from simsearch.collection.compact import compact  # compaction builds on this module

        return compact(self, cross_score=cross_score, cross_sha256=cross_sha256) is not None

    def record_fusion(self, info: FusionInfo) -> None:
        from simsearch.index.publish import publish_derived

        if not self.writable:
            raise ReadOnlyError(f"collection {self.name!r} is open read-only here: fit on the writer")
        publish_derived(
            self.index.path.parent / self.name, lambda _: [], lambda m: m.model_copy(update={"fusion": info})
        )

    def stale(self) -> bool:
        link = self.index.path.parent / self.name
        try:
            return link.resolve(strict=True) != self.index.path
        except OSError:  # the link is gone: the collection was deleted
            return True

    def describe(self) -> dict[str, Any]:
        manifest = public_manifest(self.index.manifest)
        return {"backend": self.backend, "folder": self.index.path.name, **manifest}

    def close(self) -> None:
        if self.lexical is not None:
            self.lexical.close()
        if self.log is not None:
            self.log.close()
        self.index.close()


def public_manifest(manifest: Manifest) -> dict[str, Any]:
    """The manifest as callers may see it: models by name, folder and hash, never where they live on the
    server, and the corpus by its file name."""
    out = manifest.model_dump(mode="json")
    out["model"]["path"] = display_name(manifest.model.path)
    out["source"]["path"] = (
        display_name(manifest.source.path) if manifest.source.format != "compaction" else (manifest.source.path)
    )
    for part in ("cur", "rerank"):
        if out.get(part) and out[part].get("cross_encoder"):
            out[part]["cross_encoder"]["path"] = display_name(out[part]["cross_encoder"]["path"])
    return out
