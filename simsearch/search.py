"""The searcher: query texts -> vectors -> nearest documents, used by the service and the evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.encoders import BiEncoder
from simsearch.index_folder import LoadedIndex, check_model


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str
    metadata: dict[str, Any] | None


class Searcher:
    """Dense search over one loaded index with the encoder that built it."""

    def __init__(self, encoder: BiEncoder, index: LoadedIndex, *, query_prefix: str = "") -> None:
        check_model(index, encoder)
        self.encoder = encoder
        self.index = index
        self.query_prefix = query_prefix

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
        """Top ``k`` documents for each query, best first."""
        return [self.hits(ranked) for ranked in self.search_vectors(self.encode_queries(queries), k)]
