"""Sentence similarity with a bi-encoder: cosine of unit vectors, each distinct text encoded once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simsearch.encoders import BiEncoder


def _encode_unique(encoder: BiEncoder, texts: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    index: dict[str, int] = {}
    for t in texts:
        index.setdefault(t, len(index))
    vectors = encoder.encode(list(index))
    return vectors, [index[t] for t in texts]


def pair_scores(encoder: BiEncoder, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Cosine similarity of each ``(a, b)`` pair, in input order."""
    if not pairs:
        return np.zeros(0, dtype=np.float32)
    vectors, rows = _encode_unique(encoder, [t for pair in pairs for t in pair])
    a, b = vectors[rows[0::2]], vectors[rows[1::2]]
    return np.einsum("ij,ij->i", a, b)
