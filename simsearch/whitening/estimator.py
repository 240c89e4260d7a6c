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

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted


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
        """Fit on all of ``X`` at once; raises ``ValueError`` when ``X`` cannot give what was asked for."""
        for attr in ("n_samples_seen_", "mean_", "_comoment", "weight_", "bias_"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._accumulate(X)
        self._solve(strict=True)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> Whitening:
        """Add a batch of vectors to the statistics (Chan et al.'s pairwise update) and re-solve when they
        allow it. A batch may be smaller than the dimension: until the vectors seen so far span enough
        directions for ``n_components`` (with γ > 0), the estimator stays unfitted instead of raising."""
        self._accumulate(X)
        self._solve(strict=False)
        return self

    def _accumulate(self, X: Any) -> None:
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

    def _solve(self, strict: bool) -> None:
        """Eigen-decompose the covariance and set ``weight_``/``bias_``. When the statistics cannot give
        ``n_components`` yet, raise if ``strict``, else leave the estimator unfitted until more arrive."""
        d, n = self.n_features_in_, self.n_samples_seen_
        k = d if self.n_components is None else int(self.n_components)
        if not 1 <= k <= d:
            raise ValueError(f"n_components must be between 1 and {d}, got {self.n_components}")
        try:
            self._solve_or_raise(d, n, k)
        except ValueError:
            for attr in ("weight_", "bias_"):
                if hasattr(self, attr):
                    delattr(self, attr)
            if strict:
                raise

    def _solve_or_raise(self, d: int, n: int, k: int) -> None:
        if n < 2:
            raise ValueError(f"{n} vector has no covariance: fit on more sentences")
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
