"""A consistent view of a collection for one search: the base build, the writes since, filters planned.

Every retriever merges the base build with the delta (the uncompacted writes, searched exactly) and
never returns a dead key. Filtered dense search is planned by how many documents the filter lets through,
as Qdrant plans it: few (at most :data:`EXACT_SCAN_MAX`) are scanned exactly from the build's stored
embeddings; more go through the ANN index with an ID selector over the allowed positions and a search
effort raised by the inverse of the selectivity, so a restricted graph search still finds ``k``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from simsearch.ann import AnnIndex
from simsearch.collection.delta import DeltaState
from simsearch.collection.filters import Filter
from simsearch.collection.metadata import MetadataColumns
from simsearch.data.corpus import Document
from simsearch.index import layout
from simsearch.index.open import LoadedIndex
from simsearch.lexical import LexicalSearcher
from simsearch.search.fusion import DEFAULT_FUSION, Fusion, fusion_from
from simsearch.search.types import ModeUnavailableError, PassageHit, Ranked
from simsearch.text.passages import passage_input

EXACT_SCAN_MAX = 20_000  # allowed documents scanned exactly; above this the ANN index with a selector
MAX_EFFORT = 32.0
MASK_CACHE = 64  # filters whose base masks are kept (a page of results usually repeats its filter)


def top(keys: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best ``(key, score)``, best first (ties by key, so results repeat)."""
    if len(keys) == 0 or k < 1:
        return []
    order = np.lexsort((keys, -scores))[:k]
    return [(int(keys[i]), float(scores[i])) for i in order]


def top_documents(doc_keys: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best documents of passage scores, each scored by its best passage (MaxP), best first."""
    if len(doc_keys) == 0 or k < 1:
        return []
    order = np.lexsort((doc_keys, -scores))
    seen, out = set(), []
    for i in order:
        key = int(doc_keys[i])
        if key not in seen:
            seen.add(key)
            out.append((key, float(scores[i])))
            if len(out) == k:
                break
    return out


def merge(*lists: Ranked, k: int) -> Ranked:
    pooled = [pair for ranked in lists for pair in ranked]
    pooled.sort(key=lambda p: (-p[1], p[0]))
    return pooled[:k]


class BaseSegment:
    """The base build of a collection with what filtered search needs, made on first use: the metadata
    as columns, the stored embeddings (memory-mapped), a cache of filter masks."""

    def __init__(self, index: LoadedIndex) -> None:
        self.index = index
        self.count = index.manifest.count
        # each vector's document position (None: one vector per document, its position); passages are stored
        # in document order, so a document's rows are one contiguous run
        self.passage_doc: np.ndarray | None = (
            np.ascontiguousarray(index.passages[:, 0]) if index.passages is not None else None
        )
        self._lock = threading.Lock()
        self._columns: MetadataColumns | None = None
        self._embeddings: np.ndarray | None = None
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def path(self) -> Path:
        return self.index.path

    def embeddings(self) -> np.ndarray:
        if self._embeddings is None:
            self._embeddings = np.load(self.index.path / layout.EMBEDDINGS_FILE, mmap_mode="r", allow_pickle=False)
        return self._embeddings

    def rows_of(self, key: int) -> tuple[int, int]:
        """The run of vector rows ``[first, end)`` of base document ``key``."""
        if self.passage_doc is None:
            return key, key + 1
        return (
            int(np.searchsorted(self.passage_doc, key, "left")),
            int(np.searchsorted(self.passage_doc, key, "right")),
        )

    def span(self, row: int, text: str) -> tuple[int, int]:
        if self.index.passages is None:
            return 0, len(text)
        return int(self.index.passages[row, 1]), int(self.index.passages[row, 2])

    def filter_mask(self, flt: Filter) -> np.ndarray:
        """Which base documents pass ``flt`` (read-only; cached per filter)."""
        with self._lock:
            found = self._masks.get(flt.text)
            if found is not None:
                self._masks.move_to_end(flt.text)
                return found
            if self._columns is None:
                self._columns = MetadataColumns(self.index.store.metadata(), self.count)
            mask = self._columns.mask(flt)
            mask.setflags(write=False)
            self._masks[flt.text] = mask
            if len(self._masks) > MASK_CACHE:
                self._masks.popitem(last=False)
            return mask


class CollectionView:
    """Implements the search pipeline's view (simsearch.search.view.SearchView) over base + delta."""

    def __init__(self, name: str, base: BaseSegment, state: DeltaState, lexical: LexicalSearcher | None = None) -> None:
        self._name = name
        self.base = base
        self.state = state
        self.lexical_searcher = lexical
        self._anchor_texts: list[str] | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def sequence(self) -> int:
        return self.state.sequence

    @property
    def count(self) -> int:
        return self.base.count - len(self.state.dead_base) + len(self.state.live_delta_keys)

    # -- what a filter lets through ------------------------------------------------------------------
    def _base_allowed(self, flt: Filter | None) -> np.ndarray | None:
        """A mask over the base positions (filter and tombstones), or ``None`` when all are allowed."""
        dead = self.state.dead_base
        if flt is None and not len(dead):
            return None
        mask = np.ones(self.base.count, dtype=bool) if flt is None else self.base.filter_mask(flt).copy()
        mask[dead] = False
        return mask

    def _delta_keys(self, flt: Filter | None) -> np.ndarray:
        keys = self.state.live_delta_keys
        if flt is None or not len(keys):
            return keys
        return keys[[flt.matches(self.state.doc(int(k)).metadata) for k in keys]]

    def allowed(self, keys: Sequence[int], flt: Filter | None) -> list[bool]:
        """Whether each key is a current document that passes ``flt`` (for results found outside the
        retrievers, such as CUR's anchor items)."""
        out = []
        for key in keys:
            if key < 0 or key in self.state.dead:
                out.append(False)
            elif flt is None:
                out.append(True)
            elif key < self.base.count:
                out.append(bool(self.base.filter_mask(flt)[key]))
            else:
                out.append(flt.matches(self.state.doc(key).metadata))
        return out

    # -- retrieval -----------------------------------------------------------------------------------
    def dense(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        """The ``k`` best documents, each scored by its best passage."""
        return merge(self._dense_base(vector, k, flt), self.dense_delta(vector, k, flt), k=k)

    def _dense_base(self, vector: np.ndarray, k: int, flt: Filter | None) -> Ranked:
        return self._best_passages_search(self.base.index.ann, vector, k, flt, self.base.passage_doc)

    def _best_passages_search(
        self, ann: AnnIndex, vector: np.ndarray, k: int, flt: Filter | None, pdoc: np.ndarray | None, exact: bool = True
    ) -> Ranked:
        """The ``k`` best base documents by ``ann`` (rows: documents, or passages of document ``pdoc[row]``,
        each document scored by its best passage). ``exact``: few allowed documents are scanned exactly from
        the stored embeddings (the rows of the dense index) rather than through ``ann``."""
        mask = self._base_allowed(flt)
        if mask is not None and not mask.any():
            return []
        rows_mask = mask if mask is None or pdoc is None else mask[pdoc]
        if exact and mask is not None and flt is not None and int(mask.sum()) <= EXACT_SCAN_MAX:  # few pass: scan
            assert rows_mask is not None
            rows = np.flatnonzero(rows_mask)
            scores = np.asarray(self.base.embeddings()[rows] @ vector, dtype=np.float32)
            return top(rows, scores, k) if pdoc is None else top_documents(pdoc[rows], scores, k)
        effort = 1.0 if mask is None else min(MAX_EFFORT, self.base.count / max(1, int(mask.sum())))
        if pdoc is None:
            return _ranked_row(*ann.search(vector[None, :], k, allowed=rows_mask, effort=effort))
        # passages: deep enough that k distinct documents come out, however many passages one document owns
        total = len(pdoc) if rows_mask is None else int(rows_mask.sum())
        depth = min(total, max(4 * k, k + 32))
        while True:
            scores, positions = ann.search(vector[None, :], depth, allowed=rows_mask, effort=effort)
            found = positions[0] >= 0
            ranked = top_documents(pdoc[positions[0][found]], scores[0][found], k)
            if len(ranked) >= k or depth >= total or int(found.sum()) < depth:
                return ranked
            depth = min(total, 4 * depth)

    def dense_delta(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        keys = self._delta_keys(flt)
        if not len(keys):
            return []
        state = self.state
        rows = state.live_rows if flt is None else np.flatnonzero(np.isin(state.row_doc[: state.n], keys))
        return top_documents(state.row_doc[rows], state.vectors[rows] @ vector, k)

    # -- passages ------------------------------------------------------------------------------------------
    @property
    def has_passages(self) -> bool:
        """Some document is split into passages (its best one is what a hit shows and re-ranking reads)."""
        return self.base.passage_doc is not None or self.state.n > self.state.ndocs

    def best_passages(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[PassageHit]:
        """Each document's best passage for the query: by the query vector when there is one, else by the
        query's terms (the lexical analyser's) it holds."""
        docs = self.documents(keys)
        terms = set(self.lexical_searcher.terms(text)) if vector is None and self.lexical_searcher else set()
        out = []
        for key, doc in zip(keys, docs, strict=True):
            if key < self.base.count:
                first, end = self.base.rows_of(key)
                spans = [self.base.span(r, doc.text) for r in range(first, end)]
                vectors = self.base.embeddings()[first:end] if vector is not None and end - first > 1 else None
            else:
                rows = self.state.rows_of(key)
                spans = [(int(s), int(e)) for s, e in self.state.row_span[rows]]
                vectors = self.state.buffer[rows] if vector is not None and len(rows) > 1 else None
            out.append(PassageHit.of(spans, choose(spans, doc.text, vectors, vector, terms, self.lexical_searcher)))
        return out

    def candidate_texts(self, keys: Sequence[int], vector: np.ndarray | None, text: str) -> list[str]:
        """What a cross-encoder reads for each document: its best passage, after the title."""
        if not self.has_passages:
            return self.texts(keys)
        docs = self.documents(keys)
        return [
            passage_input(d, p.start, p.end) for d, p in zip(docs, self.best_passages(keys, vector, text), strict=True)
        ]

    def lexical(self, text: str, k: int, flt: Filter | None = None) -> Ranked:
        if self.lexical_searcher is None:
            raise ModeUnavailableError(
                f"index {self.name!r} has no lexical index: rebuild it, or add one with "
                f"`python -m training.build_lexical --index {self.name}`"
            )
        allowed = None
        if flt is not None:
            allowed = np.concatenate([np.flatnonzero(self.base.filter_mask(flt)), self._delta_keys(flt)])
        return self.lexical_searcher.search(text, k, allowed=allowed)

    def _cur_rows(self) -> np.ndarray | None:
        """Each column of E's document, when E has a column per passage (``None``: one per document)."""
        cur = self.base.index.cur
        return self.base.passage_doc if cur is not None and cur.info.items == "passages" else None

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        cur = self.base.index.cur
        if cur is None:
            raise ModeUnavailableError(
                f"index {self.name!r} has no CUR arrays: fit them with `python -m training.fit_cur --index {self.name}`"
            )
        if self._anchor_texts is None:
            self._anchor_texts = cur.anchor_texts
        pdoc = self._cur_rows()
        # an anchor passage stands for its document (a deleted anchor is -1 and is never allowed)
        return [int(a) if a < 0 or pdoc is None else int(pdoc[a]) for a in cur.anchors], self._anchor_texts

    def cur(self, anchor_scores: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        cur = self.base.index.cur
        assert cur is not None
        query = np.asarray(anchor_scores, dtype=np.float32)
        return self._best_passages_search(cur.ann, query, k, flt, self._cur_rows(), exact=False)

    def cur_missing(self) -> bool:
        """Documents written since the build have no column of E yet (compaction computes them)."""
        return self.base.index.cur is not None and len(self.state.live_delta_keys) > 0

    def default_fusion(self) -> Fusion:
        """The fusion measured for this collection at build time (training.fit_fusion), else the default."""
        info = self.base.index.manifest.fusion
        if info is None:
            return DEFAULT_FUSION
        return fusion_from(info)

    # -- documents -----------------------------------------------------------------------------------
    def documents(self, keys: Sequence[int]) -> list[Document]:
        base = [k for k in keys if k < self.base.count]
        found = dict(zip(base, self.base.index.store.get(base), strict=True))
        return [found[k] if k < self.base.count else self.state.doc(k) for k in keys]

    def texts(self, keys: Sequence[int]) -> list[str]:
        return [d.content() for d in self.documents(keys)]

    def get(self, doc_id: str) -> Document | None:
        key = self.state.live_ids.get(doc_id)
        if key is not None:
            return self.state.doc(key)
        pos = self.base.index.store.positions_of([doc_id]).get(doc_id)
        if pos is None or pos in self.state.dead:
            return None
        return self.base.index.store.get([pos])[0]


def choose(
    spans: list[tuple[int, int]],
    text: str,
    vectors: np.ndarray | None,
    vector: np.ndarray | None,
    terms: set[str],
    searcher: LexicalSearcher | None,
) -> int:
    """The index of the best of ``spans``: the highest inner product with ``vector``, else the most of the
    query's ``terms``, else the first."""
    if len(spans) == 1:
        return 0
    if vectors is not None and vector is not None:
        return int(np.argmax(vectors @ vector))
    if terms and searcher is not None:
        counts = [len(terms & set(searcher.terms(text[s:e]))) for s, e in spans]
        return int(np.argmax(counts))
    return 0


def _ranked_row(scores: np.ndarray, positions: np.ndarray) -> Ranked:
    return [(int(p), float(s)) for p, s in zip(positions[0], scores[0], strict=True) if p >= 0]
