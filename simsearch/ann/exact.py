"""Exact search in NumPy: the reference every other backend is tested against."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simsearch.ann.base import AnnIndex


class ExactIndex(AnnIndex):
    kind = "exact"
    filename = "vectors.npy"

    def __init__(self, dim: int, **params: Any) -> None:
        super().__init__(dim)
        self._vectors = np.zeros((0, dim), dtype=np.float32)

    def add(self, vectors: np.ndarray) -> None:
        self._vectors = np.concatenate([self._vectors, self._check(vectors)])

    def count(self) -> int:
        return int(self._vectors.shape[0])

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, effort: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        queries = self._check(queries)
        allowed = self._check_mask(allowed)
        if allowed is not None:  # search the allowed rows only, then map back to positions
            rows = np.flatnonzero(allowed)
            sub = ExactIndex(self.dim)
            sub._vectors = self._vectors[rows]
            scores, found = sub.search(queries, k)
            return scores, np.where(found >= 0, rows[np.maximum(found, 0)], -1)
        n = self.count()
        top = min(k, n)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        positions = np.full((len(queries), k), -1, dtype=np.int64)
        if top == 0:
            return scores, positions
        sims = queries @ self._vectors.T
        part = np.argpartition(-sims, top - 1, axis=1)[:, :top] if top < n else np.tile(np.arange(n), (len(queries), 1))
        part_scores = np.take_along_axis(sims, part, axis=1)
        # Ties are broken by position so results are deterministic.
        order = np.lexsort((part, -part_scores), axis=1)
        positions[:, :top] = np.take_along_axis(part, order, axis=1)
        scores[:, :top] = np.take_along_axis(part_scores, order, axis=1)
        return scores, positions

    def save(self, folder: Path) -> Path:
        path = Path(folder) / self.filename
        with path.open("wb") as f:
            np.save(f, self._vectors, allow_pickle=False)
        return path

    @classmethod
    def load(cls, folder: Path, dim: int, params: dict[str, Any]) -> ExactIndex:
        index = cls(dim)
        vectors = np.load(Path(folder) / cls.filename, allow_pickle=False)
        index._vectors = index._check(vectors)
        return index

    @property
    def vectors(self) -> np.ndarray:
        return self._vectors
