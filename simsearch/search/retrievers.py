"""Retrievers: a query's inputs to ranked candidates from one view. Chosen by name from :data:`RETRIEVERS`.

Each retriever declares what it needs computed by a model first (the query vector, or the anchor items'
exact cross-encoder scores), so the pipeline makes each model call once, whatever the mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from simsearch.search.types import Ranked
from simsearch.search.view import SearchView


@dataclass
class QueryInputs:
    """The query and what the models computed for it before retrieval."""

    text: str
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
    return view.dense(q.vector, k)


def _cur(view: SearchView, q: QueryInputs, k: int) -> Ranked:
    """The ``k`` best items by ``ŝ = c · E`` that are not anchors (their exact scores are already known)."""
    assert q.anchor_scores is not None
    anchors = set(q.anchor_keys)
    found = view.cur(q.anchor_scores, k + len(anchors))
    return [(p, s) for p, s in found if p not in anchors][:k]


RETRIEVERS: dict[str, Retriever] = {
    "dense": Retriever(_dense, needs_vector=True),
    "cur": Retriever(_cur, needs_anchor_scores=True),
}
