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

from dataclasses import dataclass
from typing import Literal

from simsearch.search.types import Ranked

FusionMethod = Literal["rrf", "convex", "dense"]


@dataclass(frozen=True)
class Fusion:
    method: FusionMethod = "rrf"
    alpha: float = 0.5  # weight of the dense list in the convex combination
    rrf_k: int = 60


# what hybrid search uses on a collection without judgments of its own: dense-heavy, the α that was at
# least as good as dense on both collections measured here (bench/results/hybrid.json)
DEFAULT_FUSION = Fusion("convex", alpha=0.8)
DENSE_MIN, LEXICAL_MIN = -1.0, 0.0  # the lowest score each can give: a cosine, a BM25 sum


def rrf(lists: list[Ranked], k: int = 60) -> Ranked:
    scores: dict[int, float] = {}
    for ranked in lists:
        for rank, (key, _) in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda p: (-p[1], p[0]))


def _normalised(ranked: Ranked, low: float) -> dict[int, float]:
    if not ranked:
        return {}
    span = max(s for _, s in ranked) - low
    return {key: (s - low) / span if span > 0 else 1.0 for key, s in ranked}


def convex(dense: Ranked, lexical: Ranked, alpha: float) -> Ranked:
    d, lex = _normalised(dense, DENSE_MIN), _normalised(lexical, LEXICAL_MIN)
    keys = set(d) | set(lex)
    scores = {key: alpha * d.get(key, 0.0) + (1 - alpha) * lex.get(key, 0.0) for key in keys}
    return sorted(scores.items(), key=lambda p: (-p[1], p[0]))


def fuse(dense: Ranked, lexical: Ranked, fusion: Fusion) -> Ranked:
    if fusion.method == "dense":
        return dense
    if fusion.method == "convex":
        return convex(dense, lexical, fusion.alpha)
    return rrf([dense, lexical], fusion.rrf_k)
