"""The searcher: a query to ranked documents, by dense retrieval, dense + cross-encoder re-ranking, or the
CUR approximation of the cross-encoder. Used by the service and by the evaluation jobs alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from simsearch.cross import CrossScorer
from simsearch.cur_store import CurArrays
from simsearch.encoders import BiEncoder
from simsearch.index_folder import IndexLoadError, LoadedIndex, check_model

Mode = Literal["dense", "rerank", "cur"]
MODES: tuple[Mode, ...] = ("dense", "rerank", "cur")


class ModeUnavailableError(ValueError):
    """A search mode this index or configuration cannot serve; the message names the fix."""


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Ranking:
    """Positions and scores, best first, and what the cross-encoder was asked to do to get them."""

    positions: list[int]
    scores: list[float]
    cross_encoder_calls: int = 0


class Searcher:
    """Search over one loaded index with the encoder that built it (and an optional cross-encoder)."""

    def __init__(
        self, encoder: BiEncoder, index: LoadedIndex, *, query_prefix: str = "", cross: CrossScorer | None = None
    ) -> None:
        check_model(index, encoder)
        if index.cur is not None and cross is not None and index.cur.info.cross_encoder.sha256 != cross.sha256:
            fitted = index.cur.info.cross_encoder
            raise IndexLoadError(
                f"index {index.name!r} has CUR arrays fitted with cross-encoder {fitted.path} "
                f"(sha256 {fitted.sha256[:12]}), but the configured one is {cross.path} (sha256 {cross.sha256[:12]}): "
                "set SIMSEARCH_CROSS_MODEL to the fitted one, or fit CUR again with this one"
            )
        self.encoder = encoder
        self.index = index
        self.query_prefix = query_prefix
        self.cross = cross

    # -- dense ------------------------------------------------------------------------------------------
    def encode_queries(self, queries: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.encoder.encode(queries, prefix=self.query_prefix, progress=progress)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
        """``(position, score)`` lists, best first, without touching the document store."""
        scores, positions = self.index.ann.search(vectors, k)
        return [
            [(int(p), float(s)) for p, s in zip(row_p, row_s, strict=True) if p >= 0]
            for row_p, row_s in zip(positions, scores, strict=True)
        ]

    def hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        docs = self.index.store.get([p for p, _ in ranked])
        return [
            Hit(id=d.id, score=s, title=d.title, text=d.text, metadata=d.metadata)
            for d, (_, s) in zip(docs, ranked, strict=True)
        ]

    def search(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        """Dense top ``k`` documents for each query, best first."""
        return [self.hits(ranked) for ranked in self.search_vectors(self.encode_queries(queries), k)]

    # -- cross-encoder modes ----------------------------------------------------------------------------
    def _cross(self) -> CrossScorer:
        if self.cross is None:
            raise ModeUnavailableError("no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one")
        return self.cross

    def cross_scores(self, query: str, positions: Sequence[int]) -> np.ndarray:
        """Exact cross-encoder scores of ``query`` against the documents at ``positions``."""
        docs = self.index.store.get(list(positions))
        return self._cross().score([(query, d.content()) for d in docs])

    def dense_candidates(self, vector: np.ndarray, k: int) -> list[int]:
        ((ranked),) = self.search_vectors(vector[None, :], k)
        return [p for p, _ in ranked]

    def cur_arrays(self) -> CurArrays:
        if self.index.cur is None:
            raise ModeUnavailableError(
                f"index {self.index.name!r} has no CUR arrays: fit them with "
                f"`python -m training.fit_cur --index {self.index.name}`"
            )
        return self.index.cur

    def cur_candidates(self, c: np.ndarray, k_r: int) -> list[int]:
        """The ``k_r`` best items by ``c · E`` that are not anchors (their exact scores are known)."""
        cur = self.cur_arrays()
        anchors = set(cur.anchors.tolist())
        found, _ = cur.candidates(c, k_r + len(anchors))
        return [int(p) for p in found if int(p) not in anchors][:k_r]

    def texts(self, positions: Sequence[int]) -> list[str]:
        return [d.content() for d in self.index.store.get(list(positions))]

    def rank(self, query: str, k: int, mode: Mode = "dense", k_r: int = 100) -> Ranking:
        """The top ``k`` by ``mode``. ``rerank``: dense top ``k_r`` re-scored by the cross-encoder
        (``k_r`` calls). ``cur``: ``k_i`` calls for the anchor items, approximate scores ``c · E`` for every
        item, the top ``k_r`` of them re-scored exactly (the anchors' exact scores are kept too)."""
        if mode not in MODES:
            raise ModeUnavailableError(f"unknown search mode {mode!r}; use one of {MODES}")
        if mode == "dense":
            ((ranked),) = self.search_vectors(self.encode_queries([query]), k)
            return Ranking([p for p, _ in ranked], [s for _, s in ranked])
        cross = self._cross()
        if mode == "rerank":
            candidates = self.dense_candidates(self.encode_queries([query])[0], k_r)
            return top_k(candidates, cross.score([(query, t) for t in self.texts(candidates)]), k)
        anchors = self.cur_arrays().anchors.tolist()
        c = cross.score([(query, t) for t in self.texts(anchors)])
        fresh = self.cur_candidates(c, k_r)
        exact = cross.score([(query, t) for t in self.texts(fresh)])
        return top_k(anchors + fresh, np.concatenate([c, exact]), k)


def top_k(positions: Sequence[int], scores: np.ndarray, k: int) -> Ranking:
    """The ``k`` best of ``positions`` by their exact cross-encoder ``scores`` (one call each)."""
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return Ranking([int(positions[i]) for i in order], [float(scores[i]) for i in order], len(positions))
