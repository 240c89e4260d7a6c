"""Anchor items for CUR: the columns of the score matrix that the approximation is solved from."""

from __future__ import annotations

import numpy as np


def select_anchor_items(
    n_items: int, k_i: int, method: str, seed: int, embeddings: np.ndarray | None = None
) -> np.ndarray:
    """``k_i`` distinct item positions: uniformly at random, or the item nearest each k-means centroid
    of the dense embeddings (one per cluster, so the anchors cover the corpus)."""
    if not 1 <= k_i <= n_items:
        raise ValueError(f"k_i must be between 1 and the {n_items} items, got {k_i}")
    rng = np.random.default_rng(seed)
    if method == "random":
        return np.sort(rng.choice(n_items, size=k_i, replace=False))
    if method == "kmeans":
        if embeddings is None or len(embeddings) != n_items:
            raise ValueError("k-means anchor selection needs one dense embedding per item")
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=k_i, random_state=seed, n_init=1).fit(embeddings)
        chosen: list[int] = []
        taken: set[int] = set()
        for centre in km.cluster_centers_:
            order = np.argsort(-(embeddings @ centre))  # nearest by inner product: embeddings are unit vectors
            pick = next(int(i) for i in order if int(i) not in taken)
            taken.add(pick)
            chosen.append(pick)
        return np.sort(np.array(chosen))
    raise ValueError(f"unknown anchor selection {method!r}; use 'random' or 'kmeans'")
