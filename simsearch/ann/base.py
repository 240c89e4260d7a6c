"""The interface every vector index backend implements.

Vectors are float32 rows; the score is the inner product (the cosine for unit vectors). Positions are
the row numbers in insertion order, which is how the document store is keyed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class AnnIndex(ABC):
    """A maximum-inner-product index over ``dim``-dimensional float32 vectors."""

    kind: ClassVar[str]
    #: file the backend writes inside an index folder
    filename: ClassVar[str]

    def __init__(self, dim: int, **params: Any) -> None:
        if dim < 1:
            raise ValueError(f"dimension must be positive, got {dim}")
        self.dim = dim

    def train(self, vectors: np.ndarray) -> None:  # noqa: B027 - optional: most indexes need no training
        """Learn what the index needs before vectors are added (IVF's lists); a no-op for most."""

    @abstractmethod
    def add(self, vectors: np.ndarray) -> None:
        """Append rows; their positions continue from :meth:`count`."""

    @abstractmethod
    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, effort: float = 1.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` per query: ``(scores, positions)``, both ``(n, k)``, best first.

        ``allowed``: a boolean mask over the positions; only those may be returned (metadata filters,
        deleted documents). ``effort``: how much harder than its tuned setting an approximate index
        searches (a restricted search needs more candidates to find ``k`` allowed ones).
        Where fewer than ``k`` vectors qualify, positions are padded with ``-1`` and scores with ``-inf``.
        """

    @abstractmethod
    def count(self) -> int:
        """Number of vectors held."""

    @abstractmethod
    def save(self, folder: Path) -> Path:
        """Write the index into ``folder``; return the file written."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path, dim: int, params: dict[str, Any]) -> AnnIndex:
        """Read an index written by :meth:`save`."""

    def params(self) -> dict[str, Any]:
        """Parameters that :meth:`load` needs and the manifest records."""
        return {}

    def _check_mask(self, allowed: np.ndarray | None) -> np.ndarray | None:
        if allowed is not None and allowed.shape != (self.count(),):
            raise ValueError(f"allowed must be a boolean mask of {self.count()} positions, got {allowed.shape}")
        return allowed

    def _check(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        return vectors
