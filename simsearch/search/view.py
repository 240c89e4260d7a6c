"""What a search reads: the :class:`SearchView` protocol, and :class:`IndexView`, a plain view over vectors
and documents held in memory (benchmarks over arrays, tests).

Every retriever and stage reaches the data through these methods, so each storage backend plugs in by
implementing them: the embedded collection (simsearch.collection.view: a build plus its writes), Milvus
(simsearch.collection.milvus). Vector indexes are reached only through the ANN interface (simsearch.ann).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from simsearch.ann import AnnIndex
from simsearch.data.corpus import Document
from simsearch.search.fusion import Fusion
from simsearch.search.types import Hit, ModeUnavailableError, PassageHit, Ranked

if TYPE_CHECKING:
    from simsearch.collection.filters import Filter


class SearchView(Protocol):
    """A consistent, read-only view of one collection for the length of a search. ``flt`` narrows a
    retriever to the documents a metadata filter lets through."""

    @property
    def name(self) -> str: ...

    def dense(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        """Top ``k`` by inner product with the query vector."""
        ...

    def lexical(self, text: str, k: int, flt: Filter | None = None) -> Ranked:
        """Top ``k`` by BM25 (:class:`ModeUnavailableError` without a lexical index)."""
        ...

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        """Keys and texts of the CUR anchor items (:class:`ModeUnavailableError` without CUR arrays); a
        key is -1 for an anchor no longer in the collection (its text still defines the approximation)."""
        ...

    def cur(self, anchor_scores: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        """Top ``k`` by the CUR approximation ``c · E`` of the cross-encoder's scores."""
        ...

    def cur_missing(self) -> bool:
        """Some documents have no column of ``E`` yet (written since the CUR arrays were made)."""
        ...

    def dense_delta(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        """Top ``k`` by inner product among the documents that :meth:`cur_missing` is about."""
        ...

    def allowed(self, keys: Sequence[int], flt: Filter | None) -> list[bool]:
        """Whether each key is a current document that passes ``flt``."""
        ...

    def default_fusion(self) -> Fusion:
        """The fusion measured for this collection (or the stated default)."""
        ...

    def texts(self, keys: Sequence[int]) -> list[str]:
        """What the models read for these keys (title and text)."""
        ...

    @property
    def has_passages(self) -> bool:
        """Some document is split into passages."""
        ...

    def best_passages(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[PassageHit]:
        """Each document's passage that best matches the query (the whole text when it is not split)."""
        ...

    def candidate_texts(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[str]:
        """What the cross-encoder reads of each document for this query: its best passage, after the title."""
        ...

    def documents(self, keys: Sequence[int]) -> Sequence[Document | None]:
        """The documents of ``keys``, in order; ``None`` for one deleted after the search found it (a store
        that reads live, such as Milvus): it is left out of the hits."""
        ...


def ranked(scores: np.ndarray, positions: np.ndarray) -> list[Ranked]:
    """ANN output rows as ``(key, score)`` lists, without the padding of short results."""
    return [
        [(int(p), float(s)) for p, s in zip(row_p, row_s, strict=True) if p >= 0]
        for row_p, row_s in zip(positions, scores, strict=True)
    ]


def to_hits(
    docs: Sequence[Document | None], ranking: Ranked, passages: Sequence[PassageHit] | None = None
) -> list[Hit]:
    shown = passages if passages is not None else [None] * len(ranking)
    return [
        Hit(id=d.id, score=s, title=d.title, text=d.text, metadata=d.metadata, passage=p)
        for d, (_, s), p in zip(docs, ranking, shown, strict=True)
        if d is not None
    ]


def whole_texts(docs: Sequence[Document | None]) -> list[PassageHit]:
    """One passage per document: its whole text (a view that does not split documents)."""
    return [PassageHit(0, 0, len(d.text) if d is not None else 0) for d in docs]


class DocumentSource(Protocol):
    def get(self, positions: Sequence[int]) -> list[Document]: ...


class CurSource(Protocol):
    @property
    def anchors(self) -> np.ndarray: ...

    @property
    def ann(self) -> AnnIndex: ...


class IndexView:
    """Vectors, documents and optional CUR columns, without writes, filters or a lexical index."""

    def __init__(self, name: str, ann: AnnIndex, store: DocumentSource, cur: CurSource | None = None) -> None:
        self._name = name
        self.ann = ann
        self.store = store
        self.cur_arrays = cur
        self._anchor_texts: list[str] | None = None

    @property
    def name(self) -> str:
        return self._name

    @staticmethod
    def _no_filter(flt: Filter | None) -> None:
        if flt is not None:
            raise ModeUnavailableError("this view has no document metadata to filter on", field="filter")

    def dense(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        self._no_filter(flt)
        return ranked(*self.ann.search(vector[None, :], k))[0]

    def lexical(self, text: str, k: int, flt: Filter | None = None) -> Ranked:
        raise ModeUnavailableError(f"{self.name!r} has no lexical index")

    def _cur(self) -> CurSource:
        if self.cur_arrays is None:
            raise ModeUnavailableError(
                f"index {self.name!r} has no CUR arrays: fit them with `python -m training.fit_cur --index {self.name}`"
            )
        return self.cur_arrays

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        keys = [int(a) for a in self._cur().anchors]
        if self._anchor_texts is None:  # fixed for the view: read once
            self._anchor_texts = self.texts(keys)
        return keys, self._anchor_texts

    def cur(self, anchor_scores: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        self._no_filter(flt)
        query = np.asarray(anchor_scores, dtype=np.float32)[None, :]
        return ranked(*self._cur().ann.search(query, k))[0]

    def cur_missing(self) -> bool:
        return False

    def dense_delta(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        return []

    def allowed(self, keys: Sequence[int], flt: Filter | None) -> list[bool]:
        self._no_filter(flt)
        return [k >= 0 for k in keys]

    def default_fusion(self) -> Fusion:
        return Fusion()

    def texts(self, keys: Sequence[int]) -> list[str]:
        return [d.content() for d in self.store.get(list(keys))]

    has_passages = False

    def best_passages(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[PassageHit]:
        return whole_texts(self.documents(keys))

    def candidate_texts(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[str]:
        return self.texts(keys)

    def documents(self, keys: Sequence[int]) -> list[Document]:
        return self.store.get(list(keys))
