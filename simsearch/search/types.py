"""What goes into a search and what comes out, shared by every stage of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Mode = Literal["dense", "rerank", "cur"]

#: a ranked candidate list: (key, score), best first; keys are positions in the searched view
Ranked = list[tuple[int, float]]


class ModeUnavailableError(ValueError):
    """A search mode this index or configuration cannot serve; the message names the fix."""


@dataclass(frozen=True)
class SearchParams:
    """How to search: ``k`` hits, by ``mode``, with ``k_r`` cross-encoder candidates when re-scoring."""

    k: int = 10
    mode: Mode = "dense"
    k_r: int = 100


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    cross_encoder_calls: int = 0
