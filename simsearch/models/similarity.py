"""Sentence similarity with a bi-encoder: the cosine of unit vectors, each distinct text encoded once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def distinct_texts(pairs: Sequence[tuple[str, str]]) -> tuple[list[str], list[int], list[int]]:
    """The distinct texts of ``pairs`` (to encode once each) and, per pair, the rows of its two texts."""
    row: dict[str, int] = {}
    for a, b in pairs:
        row.setdefault(a, len(row))
        row.setdefault(b, len(row))
    return list(row), [row[a] for a, _ in pairs], [row[b] for _, b in pairs]


def paired_cosines(vectors: np.ndarray, rows_a: list[int], rows_b: list[int]) -> np.ndarray:
    """Cosine of each pair of unit vectors, in pair order."""
    return np.einsum("ij,ij->i", vectors[rows_a], vectors[rows_b])
