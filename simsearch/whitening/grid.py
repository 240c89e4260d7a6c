"""Choosing the whitening (β, γ, k) by a measured grid."""

from __future__ import annotations

from typing import Any

import numpy as np

from simsearch.whitening.estimator import Whitening

GRID_COMBOS = ((1.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0))  # (beta, gamma)
GRID_KS = (None, 256, 128, 64)  # None: every dimension


def grid_search(
    vectors: np.ndarray,
    score: Any,
    *,
    combos: tuple[tuple[float, float], ...] = GRID_COMBOS,
    ks: tuple[int | None, ...] = GRID_KS,
    tolerance: float = 0.5,
) -> dict[str, Any]:
    """Fit every (β, γ, k) on ``vectors``, score each with ``score(whitening)`` (higher is better), and
    choose the smallest k within ``tolerance`` of the best score (the best score among those). The
    unwhitened vectors are scored too (``score(None)``) as the baseline to beat; points that cannot be
    fitted (k above the rank) are reported with their error."""
    d = vectors.shape[1]
    baseline = score(None)
    rows: list[dict[str, Any]] = []
    for beta, gamma in combos:
        for k in sorted({min(k or d, d) for k in ks}, reverse=True):
            try:
                fitted = Whitening(beta=beta, gamma=gamma, n_components=k).fit(vectors)
            except ValueError as exc:
                rows.append({"beta": beta, "gamma": gamma, "k": k, "score": None, "error": str(exc)})
                continue
            rows.append({"beta": beta, "gamma": gamma, "k": k, "score": score(fitted)})
    scored = [r for r in rows if r["score"] is not None]
    best = max(r["score"] for r in scored)
    near = [r for r in scored if r["score"] >= best - tolerance]
    chosen = min(near, key=lambda r: (r["k"], -r["score"]))
    return {
        "baseline_score": baseline,
        "rows": rows,
        "best_score": best,
        "tolerance": tolerance,
        "chosen": chosen,
        "beats_baseline": chosen["score"] > baseline,
    }
