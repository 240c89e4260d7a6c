"""Fusing ranked lists from several retrievers: reciprocal rank fusion and a convex combination.

RRF (Cormack et al., 2009): ``Σ 1 / (k + rank)`` over the lists a document is in, ``k = 60``: needs no
scores, so it fuses BM25 and cosines without calibration. Convex: ``α · dense + (1 − α) · lexical`` of
scores normalised by their theoretical minimum and the list's maximum (TM2C2 in Bruch et al., 2023, "An
Analysis of Fusion Functions for Hybrid Retrieval": ``(s − m) / (max − m)`` with ``m = −1`` for a cosine,
``0`` for BM25; a document missing from a list gets 0 from it), where a tuned α beats RRF. Measured here
against plain min-max and z-scores on SciFact (bench/results/hybrid.json): with α chosen on the train
split it gives the best test nDCG@10. Which one a collection uses, and α, are measured per collection
at build time (training.fit_fusion); ``dense`` is a possible outcome: hybrid search then answers as dense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from simsearch.search.types import Ranked

FusionMethod = Literal["rrf", "convex", "dense"]


@dataclass(frozen=True)
class Fusion:
    method: FusionMethod = "rrf"
    alpha: float = 0.5  # weight of the dense list in the convex combination
    rrf_k: int = 60
    # per query (convex only): α moves with how far each list's first score stands above its tenth, relative
    # to the collection's medians of those gaps (its self-supervised queries'): 0 keeps α fixed
    beta: float = 0.0
    dense_gap: float = 1.0
    lexical_gap: float = 1.0


def fusion_from(info: Any) -> Fusion:
    """The fusion a collection's recorded choice (simsearch.index.manifest.FusionInfo) means."""
    return Fusion(
        method=info.method,
        alpha=info.alpha if info.alpha is not None else 0.5,
        rrf_k=info.rrf_k,
        beta=info.beta or 0.0,
        dense_gap=info.dense_gap or 1.0,
        lexical_gap=info.lexical_gap or 1.0,
    )


# what hybrid search uses on a collection without judgments of its own: dense-heavy, the α that was at
# least as good as dense on both collections measured here (bench/results/hybrid.json)
DEFAULT_FUSION = Fusion("convex", alpha=0.8)
DENSE_MIN, LEXICAL_MIN = -1.0, 0.0  # the lowest score each can give: a cosine, a BM25 sum


# The fusions below are vectorised with numpy: each list goes in FUSION_DEPTH (1,000) deep, and the
# dictionary versions took most of a hybrid search's retrieval time (about 9 ms of 20 per query in a
# profile). The results are the same: the same sums (a key in one list only gets exactly its one
# contribution) and the same order (score descending, then key ascending).


def _arrays(ranked: Ranked) -> tuple[np.ndarray, np.ndarray]:
    if not ranked:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    keys, scores = zip(*ranked, strict=True)
    return np.asarray(keys, dtype=np.int64), np.asarray(scores, dtype=np.float64)


def _combined(keys: list[np.ndarray], contributions: list[np.ndarray]) -> Ranked:
    all_keys = np.concatenate(keys)
    if not len(all_keys):
        return []
    unique, inverse = np.unique(all_keys, return_inverse=True)
    totals = np.bincount(inverse, weights=np.concatenate(contributions), minlength=len(unique))
    order = np.lexsort((unique, -totals))
    return list(zip(unique[order].tolist(), totals[order].tolist(), strict=True))


def rrf(lists: list[Ranked], k: int = 60) -> Ranked:
    keys, contributions = [], []
    for ranked in lists:
        key_array, _ = _arrays(ranked)
        keys.append(key_array)
        contributions.append(1.0 / (k + np.arange(1, len(key_array) + 1, dtype=np.float64)))
    return _combined(keys, contributions)


def _normalised(scores: np.ndarray, low: float) -> np.ndarray:
    if not len(scores):
        return scores
    span = float(scores.max()) - low
    return (scores - low) / span if span > 0 else np.ones_like(scores)


def convex(dense: Ranked, lexical: Ranked, alpha: float) -> Ranked:
    (dk, ds), (lk, ls) = _arrays(dense), _arrays(lexical)
    return _combined([dk, lk], [alpha * _normalised(ds, DENSE_MIN), (1 - alpha) * _normalised(ls, LEXICAL_MIN)])


GAP_AT = 10
GAP_EPS = 1e-6


def gaps(dense: Ranked, lexical: Ranked, at: int = GAP_AT) -> tuple[float, float]:
    """How far each list's first score stands above its ``at``-th (the last when shorter): the cosine
    difference for dense; for BM25, relative to its first score (its scale depends on the query)."""
    gd = dense[0][1] - dense[min(at, len(dense)) - 1][1] if dense else 0.0
    gl = (lexical[0][1] - lexical[min(at, len(lexical)) - 1][1]) / lexical[0][1] if lexical and lexical[0][1] else 0.0
    return gd, gl


def query_alpha(dense: Ranked, lexical: Ranked, fusion: Fusion) -> float:
    """The convex weight of dense for this query: ``σ(logit(α) + β · z)``, ``z = log(gap_dense / median) −
    log(gap_lexical / median)``. A query whose lexical list is flat (no term stands out) leans on dense, one
    whose lexical top stands far above the rest (rare terms matching exactly) on lexical. Reads two scores of
    each list (a few microseconds: bench/results/fusion_unjudged.json, ``adaptive_us_per_query``)."""
    if not fusion.beta:
        return fusion.alpha
    gd, gl = gaps(dense, lexical)
    z = math.log((gd + GAP_EPS) / fusion.dense_gap) - math.log((gl + GAP_EPS) / fusion.lexical_gap)
    a0 = min(max(fusion.alpha, 0.02), 0.98)
    return 1.0 / (1.0 + math.exp(-(math.log(a0 / (1 - a0)) + fusion.beta * z)))


def fuse(dense: Ranked, lexical: Ranked, fusion: Fusion) -> Ranked:
    if fusion.method == "dense":
        return dense
    if fusion.method == "convex":
        return convex(dense, lexical, query_alpha(dense, lexical, fusion))
    return rrf([dense, lexical], fusion.rrf_k)
