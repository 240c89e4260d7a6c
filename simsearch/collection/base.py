"""The collection interface: what the service and the jobs use, whichever backend stores the data.

The embedded backend (FAISS and SQLite in-process, simsearch.collection.embedded) is the default and the
reference; Milvus (simsearch.collection.milvus) implements the same methods, and one conformance suite
(tests/test_collections.py) runs over both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from simsearch.collection.delta import WriteResult
from simsearch.data.corpus import Document
from simsearch.index.manifest import ModelInfo
from simsearch.search.view import SearchView


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

    def upsert(self, docs: Sequence[Document], vectors: np.ndarray) -> WriteResult:
        """Insert or replace ``docs`` (one vector each) as one all-or-nothing batch, durable on return."""
        ...

    def delete(self, ids: Sequence[str]) -> WriteResult: ...

    def refresh(self) -> int:
        """Catch up with writes other processes made; return the batches applied."""
        ...

    def uncompacted(self) -> int: ...

    def describe(self) -> dict[str, Any]:
        """What ``GET /indexes`` shows: the manifest or its equivalent."""
        ...

    def close(self) -> None: ...
