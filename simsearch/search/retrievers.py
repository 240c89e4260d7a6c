"""Retrievers: a query's inputs to ranked candidates from one view. Chosen by name from :data:`RETRIEVERS`.

Each retriever declares what it needs computed by a model first (the query vector, or the anchor items'
exact cross-encoder scores), so the pipeline makes each model call once, whatever the mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simsearch.search.types import Ranked
from simsearch.search.view import SearchView

if TYPE_CHECKING:
    from simsearch.collection.filters import Filter


@dataclass
class QueryInputs:
    """The query and what the models computed for it before retrieval."""

    text: str
    filter: Filter | None = None
    cross_text: str = ""  # the query as the cross-encoder reads it (cut to its window)
    vector: np.ndarray | None = None  # the bi-encoder's embedding (dense)
    anchor_keys: list[int] = field(default_factory=list)  # CUR anchor items...
    anchor_scores: np.ndarray | None = None  # ...and their exact cross-encoder scores, c


@dataclass(frozen=True)
class Retriever:
    retrieve: Callable[[SearchView, QueryInputs, int], Ranked]
    needs_vector: bool = False
    needs_anchor_scores: bool = False


def _dense(view: SearchView, q: QueryInputs, k: int) -> Ranked:
    assert q.vector is not None
    return view.dense(q.vector, k, q.filter)


def _lexical(view: SearchView, q: QueryInputs, k: int) -> Ranked:
    return view.lexical(q.text, k, q.filter)


def _cur(view: SearchView, q: QueryInputs, k: int) -> Ranked:
    """The ``k`` best items by ``ŝ = c · E`` that are not anchors (their exact scores are already known).
    Documents written since the CUR arrays were made have no column of E: the dense top quarter of the
    budget among them is added, so they can be found before compaction gives them one."""
    assert q.anchor_scores is not None
    anchors = set(q.anchor_keys)
    found = view.cur(q.anchor_scores, k + len(anchors), q.filter)
    ranked = [(p, s) for p, s in found if p not in anchors][:k]
    if q.vector is not None and view.cur_missing():
        ranked += view.dense_delta(q.vector, max(1, k // 4), q.filter)
    return ranked


RETRIEVERS: dict[str, Retriever] = {
    "dense": Retriever(_dense, needs_vector=True),
    "lexical": Retriever(_lexical),
    "cur": Retriever(_cur, needs_anchor_scores=True),
}
