"""CUR approximation of a cross-encoder (ANNCUR; Yadav et al., EMNLP 2022) as a scikit-learn estimator.

Offline, ``k_q`` anchor queries are scored against every item: ``R = CE(anchor queries × items)``
(``k_q × N``, simsearch.cur.score_matrix). With ``k_i`` anchor items, ``U = pinv(R[:, anchors])`` and
``E = U · R`` (``k_i × N``). Online, a query costs ``k_i`` cross-encoder calls,
``c = CE(query × anchor items)``, and the approximate scores of all items are ``ŝ = c · E``: a
maximum-inner-product search over the columns of ``E``. If the full query × item score matrix has rank
``r ≤ k_i`` and the anchors capture it, ``ŝ`` is exact. A new item's column is ``U · CE(anchor queries ×
item)``: ``k_q`` calls, without refitting.

The nearest relative in scikit-learn is ``Nystroem`` (a landmark-based low-rank approximation); this
estimator follows the same contract: ``__init__`` stores parameters, ``fit`` sets attributes ending in
``_``, randomness comes from ``random_state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from simsearch.cur.anchors import select_anchor_items

RCOND_GRID = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 1e-4, 1e-6)


def _solve(R: np.ndarray, anchors: np.ndarray, rcond: float) -> tuple[np.ndarray, np.ndarray, int]:
    """``U = pinv(R[:, anchors], rcond)``, ``E = U · R`` and the numerical rank kept by the cut-off."""
    A = R[:, anchors]
    singular = np.linalg.svd(A, compute_uv=False)
    rank = int(np.sum(singular > rcond * singular[0])) if singular.size and singular[0] > 0 else 0
    U = np.linalg.pinv(A, rcond=rcond)
    return U, U @ R, rank


class CURApproximation(BaseEstimator):
    """Approximate a query × item score matrix from ``k_i`` of its columns (the anchor items).

    Args:
        n_anchors: ``k_i``, the anchor items (cross-encoder calls per query); at most ``k_q``.
        selection: ``"kmeans"`` (the item nearest each k-means centroid of the dense embeddings, so the
            anchors cover the corpus) or ``"random"``.
        rcond: the pseudo-inverse's rank cut-off relative to the largest singular value, or ``"cv"`` to
            choose it from ``rcond_grid`` by ``cv``-fold validation over the anchor queries (the share of
            each held-out query's exact top ``cv_k`` found in its approximate top ``cv_k``).
        random_state: seed of the anchor selection and the folds.

    Attributes (after ``fit``): ``anchors_`` (k_i,) item positions, ``U_`` (k_i, k_q), ``E_`` (k_i, N)
    float32, ``rank_`` (numerical rank kept), ``rcond_`` (the cut-off used), ``cv_scores_`` (rcond ->
    held-out recall, when chosen by validation), ``n_queries_``, ``n_items_``.

    Example:
        >>> R = np.random.default_rng(0).normal(size=(20, 3)) @ np.random.default_rng(1).normal(size=(3, 200))
        >>> cur = CURApproximation(n_anchors=5, selection="random", rcond=1e-6).fit(R)
        >>> bool(np.allclose(cur.approximate(R[0, cur.anchors_]), R[0], atol=1e-3))
        True

    Cross-encoder score matrices are dominated by a few directions (a query-independent document prior
    carries most of the energy), and the pseudo-inverse of a nearly singular ``R[:, anchors]`` amplifies
    noise in the others; the right cut-off depends on the model and the corpus, so it is measured.
    """

    def __init__(
        self,
        n_anchors: int = 50,
        selection: str = "kmeans",
        rcond: float | str = "cv",
        rcond_grid: Sequence[float] = RCOND_GRID,
        cv: int = 5,
        cv_k: int = 10,
        random_state: int = 0,
    ) -> None:
        self.n_anchors = n_anchors
        self.selection = selection
        self.rcond = rcond
        self.rcond_grid = rcond_grid
        self.cv = cv
        self.cv_k = cv_k
        self.random_state = random_state

    def fit(self, R: Any, y: Any = None, *, embeddings: np.ndarray | None = None, anchors: Any = None) -> Any:
        """Fit on the anchor-query score matrix ``R`` (k_q × N). ``anchors`` fixes the anchor items;
        otherwise they are selected (``embeddings``, one row per item, for ``selection="kmeans"``)."""
        R = check_array(R, dtype=np.float64)
        k_q, n = R.shape
        if anchors is None:
            if not 1 <= self.n_anchors <= k_q:
                raise ValueError(f"n_anchors must be between 1 and the {k_q} anchor queries, got {self.n_anchors}")
            anchors = select_anchor_items(n, self.n_anchors, self.selection, self.random_state, embeddings)
        self.anchors_ = np.asarray(anchors, dtype=np.int64)
        if self.rcond == "cv":
            self.cv_scores_ = self._validate(R, self.anchors_)
            self.rcond_ = max(self.rcond_grid, key=lambda g: (self.cv_scores_[g], g))  # ties: the simpler model
        else:
            self.rcond_, self.cv_scores_ = float(self.rcond), {}
        U, E, self.rank_ = _solve(R, self.anchors_, self.rcond_)
        self.U_, self.E_ = U.astype(np.float32), E.astype(np.float32)
        self.n_queries_, self.n_items_ = k_q, n
        return self

    def _validate(self, R: np.ndarray, anchors: np.ndarray) -> dict[float, float]:
        rows = np.random.default_rng(self.random_state).permutation(len(R))
        parts = [p for p in np.array_split(rows, min(self.cv, len(R))) if len(p)]
        k = self.cv_k
        scores: dict[float, float] = {}
        for rcond in self.rcond_grid:
            found = []
            for held in parts:
                fit_rows = np.setdiff1d(rows, held)
                if len(fit_rows) == 0:
                    continue
                _, E, _ = _solve(R[fit_rows], anchors, rcond)
                for r in held:
                    approx = R[r, anchors] @ E
                    found.append(len(set(np.argsort(-approx)[:k]) & set(np.argsort(-R[r])[:k])) / k)
            scores[rcond] = float(np.mean(found)) if found else 0.0
        return scores

    def approximate(self, c: Any) -> np.ndarray:
        """``ŝ = c · E`` for exact anchor scores ``c`` (k_i,) or (m, k_i): one score per item."""
        check_is_fitted(self, "E_")
        return np.asarray(c, dtype=np.float32) @ self.E_

    def columns(self, R_new: Any) -> np.ndarray:
        """Columns of ``E`` for new items from their anchor-query scores ``R_new`` (k_q, m): ``U · R_new``."""
        check_is_fitted(self, "U_")
        R_new = np.asarray(R_new, dtype=np.float32)
        if R_new.ndim != 2 or R_new.shape[0] != self.n_queries_:
            raise ValueError(f"expected scores of shape ({self.n_queries_}, m), got {R_new.shape}")
        return self.U_ @ R_new
