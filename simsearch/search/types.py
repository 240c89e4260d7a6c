"""What goes into a search and what comes out, shared by every stage of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from simsearch.collection.filters import Filter
    from simsearch.search.fusion import Fusion

Mode = Literal["dense", "lexical", "hybrid", "rerank", "cur"]
FirstStage = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid", "rerank", "cur")

#: a ranked candidate list: (key, score), best first; keys identify documents within the searched view
Ranked = list[tuple[int, float]]


class ModeUnavailableError(ValueError):
    """A search mode this index or configuration cannot serve; the message names the fix, ``field`` the
    part of the request that asked for it (``mode``, or ``filter`` for a filter this view cannot apply)."""

    def __init__(self, message: str, field: str = "mode") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SearchParams:
    """How to search: ``k`` hits by ``mode``; ``rerank`` re-scores the top ``k_r`` of ``candidates`` (a first
    stage), ``cur`` re-scores ``k_r`` by the CUR approximation; ``filter`` narrows every retriever;
    ``fusion`` overrides the collection's measured fusion for ``hybrid`` (and hybrid candidates)."""

    k: int = 10
    mode: Mode = "dense"
    k_r: int = 100
    candidates: FirstStage = "dense"
    filter: Filter | None = None
    fusion: Fusion | None = None
    rerank_weight: float | None = None  # rerank: the cross-encoder's share (None: the collection's measured)


@dataclass(frozen=True)
class PassageHit:
    """The passage of a document a hit is scored by: its index among the document's passages and its
    character offsets in the document's text."""

    index: int
    start: int
    end: int

    @classmethod
    def of(cls, spans: list[tuple[int, int]], best: int) -> PassageHit:
        return cls(best, spans[best][0], spans[best][1])


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str
    metadata: dict[str, Any] | None
    passage: PassageHit | None = None


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    cross_encoder_calls: int = 0
