"""ADACUR (Yadav et al., 2023): CUR whose anchors grow with the items each round retrieves."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def adaptive_cur(
    score_items: Callable[[np.ndarray], np.ndarray],
    R: np.ndarray,
    first_anchors: np.ndarray,
    budget: int,
    rounds: int,
    rcond: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """ADACUR (Yadav et al., 2023): spend ``budget`` cross-encoder calls over ``rounds`` rounds; each round
    scores the current best approximate items exactly, adds them to the anchors and solves again.

    ``score_items(positions)`` returns exact scores for item positions. Returns the positions scored
    exactly and their scores (the caller ranks them); every call is counted in the budget.
    """
    anchors = list(map(int, first_anchors))
    exact = dict(zip(anchors, map(float, score_items(np.array(anchors))), strict=True))
    remaining = budget - len(anchors)
    if remaining < 0:
        raise ValueError(f"the budget {budget} is smaller than the {len(anchors)} first anchors")
    R64 = np.asarray(R, dtype=np.float64)
    for r in range(rounds):
        if remaining <= 0:
            break
        take = remaining // (rounds - r)
        cols = np.array(sorted(exact))
        approx = np.array([exact[i] for i in cols]) @ (np.linalg.pinv(R64[:, cols], rcond=rcond) @ R64)
        approx[cols] = -np.inf
        new = np.argsort(-approx)[:take]
        for pos, s in zip(new, score_items(new), strict=True):
            exact[int(pos)] = float(s)
        remaining -= len(new)
    positions = np.array(sorted(exact, key=lambda p: -exact[p]))
    return positions, np.array([exact[p] for p in positions], dtype=np.float32)
