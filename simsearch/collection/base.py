"""The collection interface: what the service and the jobs use, whichever backend stores the data.

The embedded backend (FAISS and SQLite in-process, simsearch.collection.embedded) is the default and the
reference; Milvus (simsearch.collection.milvus) implements the same methods, and one conformance suite
(tests/test_collections.py) runs over both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from simsearch.api.spec import CollectionSpec
from simsearch.collection.delta import WriteResult
from simsearch.data.corpus import Document
from simsearch.index.manifest import CurInfo, FusionInfo, ModelInfo, RerankInfo
from simsearch.search.view import SearchView

Score = Callable[[list[tuple[str, str]]], np.ndarray]  # pairs -> cross-encoder scores
Spans = Sequence[Sequence[tuple[int, int]]]  # each document's passages: (start, end) character offsets


class CompactionError(RuntimeError):
    """The collection cannot be compacted as asked (the message says why and what to do)."""


class CollectionSearchView(SearchView, Protocol):
    """A search view that also reads single documents and knows its size and write sequence."""

    @property
    def sequence(self) -> int: ...

    @property
    def count(self) -> int: ...

    def get(self, doc_id: str) -> Document | None: ...


class Collection(Protocol):
    name: str
    backend: str

    @property
    def model(self) -> ModelInfo:
        """The model that encoded the collection: new documents must be encoded by it (and its prefix)."""
        ...

    @property
    def build_id(self) -> str:
        """What the collection is serving: a build id, or the backend's equivalent."""
        ...

    def view(self) -> CollectionSearchView:
        """A consistent view for one search: every write acknowledged before the call, nothing half-done."""
        ...

    @property
    def sequence(self) -> int: ...

    def upsert(self, docs: Sequence[Document], vectors: np.ndarray, spans: Spans | None = None) -> WriteResult:
        """Insert or replace ``docs`` as one all-or-nothing batch, durable on return: one vector each, or with
        ``spans`` the vectors of each document's passages in order."""
        ...

    def delete(self, ids: Sequence[str]) -> WriteResult: ...

    def pending(self) -> bool:
        """Whether :meth:`refresh` may find something (a cheap look; ``True`` when the store cannot tell)."""
        ...

    def refresh(self) -> int:
        """Catch up with writes other processes made; return the batches applied."""
        ...

    def uncompacted(self) -> int: ...

    @property
    def spec(self) -> CollectionSpec | None:
        """The specification it was created with (``None``: made before specifications were recorded)."""
        ...

    @property
    def fusion(self) -> FusionInfo | None:
        """How ``hybrid`` fuses here, as measured (``None``: never measured)."""
        ...

    @property
    def rerank(self) -> RerankInfo | None:
        """The measured rerank weight and what it was measured with (``None``: never measured)."""
        ...

    @property
    def cur_info(self) -> CurInfo | None:
        """How the CUR arrays were fitted (``None``: no CUR arrays)."""
        ...

    def compact(self, cross_score: Score | None, cross_sha256: str | None) -> bool:
        """Fold the writes into the stored data now; ``False`` when there was nothing to fold.
        :class:`CompactionError` where the store merges its segments itself (Milvus)."""
        ...

    def record_fusion(self, info: FusionInfo) -> None:
        """Keep ``info`` as the collection's measured fusion (a new build for the embedded store, its
        companion record for Milvus); a reopened collection uses it."""
        ...

    def stale(self) -> bool:
        """Whether a newer build than this one's was published by another process (a replica then reopens)."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``GET /collections/{name}`` shows: the manifest or its equivalent, with live counts and no
        path of the server's."""
        ...

    def close(self) -> None: ...
