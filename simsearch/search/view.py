"""What a search reads: the :class:`SearchView` protocol, and :class:`IndexView` over one index build.

Every retriever and stage reaches the data through these methods, so a second storage backend (or a
collection with writes on top of its base build) plugs in by implementing them; the vector indexes are
reached only through the ANN interface (simsearch.ann).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from simsearch.ann import AnnIndex
from simsearch.data.corpus import Document
from simsearch.search.types import Hit, ModeUnavailableError, Ranked


class SearchView(Protocol):
    """A consistent, read-only view of one collection for the length of a search."""

    @property
    def name(self) -> str: ...

    def dense(self, vector: np.ndarray, k: int) -> Ranked:
        """Top ``k`` by inner product with the query vector."""
        ...

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        """Keys and texts of the CUR anchor items (:class:`ModeUnavailableError` without CUR arrays)."""
        ...

    def cur(self, anchor_scores: np.ndarray, k: int) -> Ranked:
        """Top ``k`` by the CUR approximation ``c · E`` of the cross-encoder's scores."""
        ...

    def texts(self, keys: Sequence[int]) -> list[str]:
        """What the models read for these keys (title and text)."""
        ...

    def documents(self, keys: Sequence[int]) -> list[Document]: ...


def ranked(scores: np.ndarray, positions: np.ndarray) -> list[Ranked]:
    """ANN output rows as ``(key, score)`` lists, without the padding of short results."""
    return [
        [(int(p), float(s)) for p, s in zip(row_p, row_s, strict=True) if p >= 0]
        for row_p, row_s in zip(positions, scores, strict=True)
    ]


def to_hits(docs: Sequence[Document], ranking: Ranked) -> list[Hit]:
    return [
        Hit(id=d.id, score=s, title=d.title, text=d.text, metadata=d.metadata)
        for d, (_, s) in zip(docs, ranking, strict=True)
    ]


class DocumentSource(Protocol):
    def get(self, positions: Sequence[int]) -> list[Document]: ...


class CurSource(Protocol):
    @property
    def anchors(self) -> np.ndarray: ...

    @property
    def ann(self) -> AnnIndex: ...


class IndexView:
    """One immutable build (or any ANN index with its documents and optional CUR arrays) as a view."""

    def __init__(self, name: str, ann: AnnIndex, store: DocumentSource, cur: CurSource | None = None) -> None:
        self._name = name
        self.ann = ann
        self.store = store
        self.cur_arrays = cur
        self._anchor_texts: list[str] | None = None

    @property
    def name(self) -> str:
        return self._name

    def dense(self, vector: np.ndarray, k: int) -> Ranked:
        return ranked(*self.ann.search(vector[None, :], k))[0]

    def _cur(self) -> CurSource:
        if self.cur_arrays is None:
            raise ModeUnavailableError(
                f"index {self.name!r} has no CUR arrays: fit them with `python -m training.fit_cur --index {self.name}`"
            )
        return self.cur_arrays

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        keys = [int(a) for a in self._cur().anchors]
        if self._anchor_texts is None:  # fixed for the build: read once
            self._anchor_texts = self.texts(keys)
        return keys, self._anchor_texts

    def cur(self, anchor_scores: np.ndarray, k: int) -> Ranked:
        query = np.asarray(anchor_scores, dtype=np.float32)[None, :]
        return ranked(*self._cur().ann.search(query, k))[0]

    def texts(self, keys: Sequence[int]) -> list[str]:
        return [d.content() for d in self.store.get(list(keys))]

    def documents(self, keys: Sequence[int]) -> list[Document]:
        return self.store.get(list(keys))
