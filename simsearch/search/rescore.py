"""Re-scoring: candidates ranked by their exact cross-encoder scores, alone or blended with the first
stage's scores (``w · CE + (1 − w) · first stage``, each min-max normalised over the candidates: the
first stage keeps what the cross-encoder gets wrong, and ``w`` is measured, like the fusion weight)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsearch.search.types import Ranked


def by_cross_encoder(keys: Sequence[int], scores: Sequence[float] | np.ndarray, k: int) -> Ranked:
    """The ``k`` best of ``keys`` by their exact ``scores`` (ties keep the candidates' order)."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")[:k]
    return [(int(keys[i]), float(values[i])) for i in order]


def _minmax(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


def interpolate(first: Sequence[float], cross: Sequence[float], weight: float) -> list[float]:
    """``weight · cross + (1 − weight) · first``, both min-max normalised over the same candidates."""
    if not len(first):
        return []
    return (weight * _minmax(cross) + (1 - weight) * _minmax(first)).tolist()
