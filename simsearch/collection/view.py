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

from simsearch.collection.delta import DeltaState
from simsearch.collection.filters import Filter
from simsearch.collection.metadata import MetadataColumns
from simsearch.data.corpus import Document
from simsearch.index import layout
from simsearch.index.open import LoadedIndex
from simsearch.lexical import LexicalSearcher
from simsearch.search.fusion import DEFAULT_FUSION, Fusion
from simsearch.search.types import ModeUnavailableError, Ranked

EXACT_SCAN_MAX = 20_000  # allowed documents scanned exactly; above this the ANN index with a selector
MAX_EFFORT = 32.0
MASK_CACHE = 64  # filters whose base masks are kept (a page of results usually repeats its filter)


def top(keys: np.ndarray, scores: np.ndarray, k: int) -> Ranked:
    """The ``k`` best ``(key, score)``, best first (ties by key, so results repeat)."""
    if len(keys) == 0 or k < 1:
        return []
    order = np.lexsort((keys, -scores))[:k]
    return [(int(keys[i]), float(scores[i])) for i in order]


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
        return merge(self._dense_base(vector, k, flt), self.dense_delta(vector, k, flt), k=k)

    def _dense_base(self, vector: np.ndarray, k: int, flt: Filter | None) -> Ranked:
        mask = self._base_allowed(flt)
        ann = self.base.index.ann
        if mask is None:
            return _ranked_row(*ann.search(vector[None, :], k))
        allowed = int(mask.sum())
        if allowed == 0:
            return []
        if allowed <= EXACT_SCAN_MAX and flt is not None:  # few pass the filter: scan them exactly
            rows = np.flatnonzero(mask)
            return top(rows, np.asarray(self.base.embeddings()[rows] @ vector, dtype=np.float32), k)
        effort = min(MAX_EFFORT, self.base.count / allowed)
        return _ranked_row(*ann.search(vector[None, :], k, allowed=mask, effort=effort))

    def dense_delta(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        keys = self._delta_keys(flt)
        if not len(keys):
            return []
        return top(keys, self.state.vectors[keys - self.base.count] @ vector, k)

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

    def cur_anchors(self) -> tuple[list[int], list[str]]:
        cur = self.base.index.cur
        if cur is None:
            raise ModeUnavailableError(
                f"index {self.name!r} has no CUR arrays: fit them with `python -m training.fit_cur --index {self.name}`"
            )
        if self._anchor_texts is None:
            self._anchor_texts = cur.anchor_texts
        return [int(a) for a in cur.anchors], self._anchor_texts

    def cur(self, anchor_scores: np.ndarray, k: int, flt: Filter | None = None) -> Ranked:
        cur = self.base.index.cur
        assert cur is not None
        query = np.asarray(anchor_scores, dtype=np.float32)[None, :]
        mask = self._base_allowed(flt)
        if mask is not None and not mask.any():
            return []
        effort = 1.0 if mask is None else min(MAX_EFFORT, self.base.count / max(1, int(mask.sum())))
        return _ranked_row(*cur.ann.search(query, k, allowed=mask, effort=effort))

    def cur_missing(self) -> bool:
        """Documents written since the build have no column of E yet (compaction computes them)."""
        return self.base.index.cur is not None and len(self.state.live_delta_keys) > 0

    def default_fusion(self) -> Fusion:
        """The fusion measured for this collection at build time (training.fit_fusion), else the default."""
        info = self.base.index.manifest.fusion
        if info is None:
            return DEFAULT_FUSION
        return Fusion(method=info.method, alpha=info.alpha if info.alpha is not None else 0.5, rrf_k=info.rrf_k)  # type: ignore[arg-type]

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


def _ranked_row(scores: np.ndarray, positions: np.ndarray) -> Ranked:
    return [(int(p), float(s)) for p, s in zip(positions[0], scores[0], strict=True) if p >= 0]
