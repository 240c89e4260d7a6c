"""Re-scoring: candidates ranked by their exact cross-encoder scores."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsearch.search.types import Ranked


def by_cross_encoder(keys: Sequence[int], scores: Sequence[float] | np.ndarray, k: int) -> Ranked:
    """The ``k`` best of ``keys`` by their exact ``scores`` (ties keep the candidates' order)."""
    values = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-values, kind="stable")[:k]
    return [(int(keys[i]), float(values[i])) for i in order]
