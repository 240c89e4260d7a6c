"""Whitening of sentence embeddings (BERT-whitening, which replaces BERT-flow), as a scikit-learn estimator.

    x̃ = (x − β·μ) · U · Λ^(−γ/2),  first k columns, then L2-normalised,

with μ and Σ = U Λ Uᵀ the mean and covariance of the fitted vectors. β = γ = 1 is BERT-whitening
(Su et al., 2021, "Whitening Sentence Representations for Better Semantics and Faster Retrieval");
β = γ = 0 is a pure rotation onto the principal axes, so k = d keeps every cosine and k < d is a
dimension reduction. The statistics are accumulated in float64 batch by batch (``partial_fit``), so
corpora that do not fit in memory can be fitted.

Degenerate input: with γ > 0, only directions with variance can be scaled; asking for more components
than the fitted vectors span (fewer sentences than dimensions, or constant vectors) raises a
``ValueError`` that says how many components are available. Identical vectors raise in every case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

WHITENING_FILE = "whitening.json"


class Whitening(TransformerMixin, BaseEstimator):
    """Fit μ and Σ on vectors; transform ``(x − βμ) · U Λ^(−γ/2)``, keep ``n_components`` columns.

    Args:
        beta: how much of the mean to remove (1: centre, 0: keep).
        gamma: how much to equalise variances (1: whiten, 0: rotate only).
        n_components: columns kept (``k``); ``None`` keeps all ``d``.
        rank_tol: eigenvalues below ``rank_tol`` × the largest count as zero.

    Attributes (after ``fit``): ``mean_`` (d,), ``covariance_`` (d, d, unbiased), ``eigenvalues_`` (d,,
    descending), ``components_`` (d, d, eigenvectors in columns), ``weight_`` (d, k), ``bias_`` (k,) with
    ``bias_ = −β μ weight_``, ``n_samples_seen_``, ``n_features_in_``.

    Example:
        >>> w = Whitening(beta=1, gamma=1, n_components=2).fit(np.random.default_rng(0).normal(size=(50, 4)))
        >>> w.transform(np.ones((1, 4))).shape
        (1, 2)
    """

    def __init__(
        self, beta: float = 1.0, gamma: float = 1.0, n_components: int | None = None, rank_tol: float = 1e-9
    ) -> None:
        self.beta = beta
        self.gamma = gamma
        self.n_components = n_components
        self.rank_tol = rank_tol

    def fit(self, X: Any, y: Any = None) -> Whitening:
        for attr in ("n_samples_seen_", "mean_", "_comoment"):
            if hasattr(self, attr):
                delattr(self, attr)
        return self.partial_fit(X)

    def partial_fit(self, X: Any, y: Any = None) -> Whitening:
        """Add a batch of vectors to the statistics (Chan et al.'s pairwise update) and re-solve."""
        X = check_array(X, dtype=np.float64)
        if not hasattr(self, "n_samples_seen_"):
            self.n_features_in_ = X.shape[1]
            self.n_samples_seen_ = 0
            self.mean_ = np.zeros(X.shape[1])
            self._comoment = np.zeros((X.shape[1], X.shape[1]))
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; the whitening was fitted on {self.n_features_in_}")
        n, nb = self.n_samples_seen_, X.shape[0]
        batch_mean = X.mean(axis=0)
        centred = X - batch_mean
        delta = batch_mean - self.mean_
        total = n + nb
        self._comoment += centred.T @ centred + np.outer(delta, delta) * (n * nb / total)
        self.mean_ = self.mean_ + delta * (nb / total)
        self.n_samples_seen_ = total
        self._solve()
        return self

    def _solve(self) -> None:
        d, n = self.n_features_in_, self.n_samples_seen_
        k = d if self.n_components is None else int(self.n_components)
        if not 1 <= k <= d:
            raise ValueError(f"n_components must be between 1 and {d}, got {self.n_components}")
        if n < 2:
            return  # one vector has no covariance: stays unfitted until more arrive
        self.covariance_ = self._comoment / (n - 1)
        eigenvalues, vectors = np.linalg.eigh(self.covariance_)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, vectors = np.clip(eigenvalues[order], 0.0, None), vectors[:, order]
        # Eigenvectors are defined up to sign; fix it so results repeat (largest entry positive).
        signs = np.sign(vectors[np.argmax(np.abs(vectors), axis=0), np.arange(d)])
        vectors = vectors * np.where(signs == 0, 1.0, signs)
        self.eigenvalues_, self.components_ = eigenvalues, vectors
        if eigenvalues[0] <= 0:
            raise ValueError(f"all {n} vectors are identical: there is no variance to whiten or rotate")
        rank = int(np.sum(eigenvalues > self.rank_tol * eigenvalues[0]))
        if self.gamma > 0 and k > rank:
            raise ValueError(
                f"only {rank} directions have variance ({n} vectors in {d} dimensions), so whitening with "
                f"gamma > 0 can keep at most {rank} components, not {k}: fit on more sentences or lower k"
            )
        scale = eigenvalues[:k] ** (-self.gamma / 2) if self.gamma > 0 else np.ones(k)
        self.weight_ = vectors[:, :k] * scale
        self.bias_ = -self.beta * self.mean_ @ self.weight_

    def transform(self, X: Any, normalize: bool = True) -> np.ndarray:
        """Whitened vectors as float32, L2-normalised unless ``normalize=False``."""
        check_is_fitted(self, "weight_")  # also unfitted after a single vector
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features; the whitening was fitted on {self.n_features_in_}")
        Y = X @ self.weight_ + self.bias_
        if normalize:
            Y /= np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12)
        return Y.astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """The parameters an index manifest records."""
        return {
            "beta": self.beta,
            "gamma": self.gamma,
            "k": int(self.weight_.shape[1]),
            "input_dim": int(self.n_features_in_),
            "fitted_on": int(self.n_samples_seen_),
        }


def whitened_model(model: Any, whitening: Whitening) -> Any:
    """A copy of the sentence-transformers ``model`` with the whitening appended as ``Dense`` + ``Normalize``,
    so plain sentence-transformers loads it and its embeddings come out whitened."""
    import copy

    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize

    check_is_fitted(whitening, "weight_")
    d, k = whitening.weight_.shape
    dense = Dense(
        d,
        k,
        bias=True,
        activation_function=None,
        init_weight=torch.tensor(whitening.weight_.T, dtype=torch.float32),
        init_bias=torch.tensor(whitening.bias_, dtype=torch.float32),
    )
    modules = [copy.deepcopy(m) for m in model]
    return SentenceTransformer(modules=[*modules, dense, Normalize()], device=str(model.device))


def save_whitened(model: Any, whitening: Whitening, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """Save the whitened model and ``whitening.json`` (the parameters, for index manifests)."""
    from simsearch.atomic import atomic_write_json

    whitened_model(model, whitening).save(str(folder))
    atomic_write_json(Path(folder) / WHITENING_FILE, {**whitening.describe(), **(extra or {})})
    return Path(folder)


def read_whitening(folder: str) -> dict[str, Any] | None:
    """The whitening parameters saved with a model folder, if any."""
    path = Path(folder) / WHITENING_FILE
    return json.loads(path.read_text()) if path.is_file() else None


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
