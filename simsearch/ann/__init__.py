"""Vector index backends behind one interface, chosen by name from :data:`BACKENDS`."""

from __future__ import annotations

from typing import Any

from simsearch.ann.base import AnnIndex
from simsearch.ann.exact import ExactIndex
from simsearch.ann.faiss_index import FaissIndex

BACKENDS: dict[str, type[AnnIndex]] = {"exact": ExactIndex, "faiss": FaissIndex}


def backend(kind: str) -> type[AnnIndex]:
    try:
        return BACKENDS[kind]
    except KeyError:
        raise ValueError(f"unknown index type {kind!r}; known: {sorted(BACKENDS)}") from None


def create_index(kind: str, dim: int, params: dict[str, Any] | None = None) -> AnnIndex:
    return backend(kind)(dim, **(params or {}))


__all__ = ["BACKENDS", "AnnIndex", "ExactIndex", "FaissIndex", "backend", "create_index"]
