"""Per-query fusion weights (issue 37, point 3), measured beside the collection-wide choice.

The weight of the dense list becomes a function of the query's two lists:
``α_q = σ(logit(α0) + β · z)`` with ``z = log(gap_dense / median) − log(gap_lexical / median)``, where a
list's gap is how far its first score stands above its tenth (the cosine difference for dense; relative to
the first score for BM25, whose scale depends on the query) and the medians are the collection's, over its
self-supervised queries. A query whose lexical list is flat (no term stands out) moves towards dense, one
whose lexical top result stands far above the rest (rare terms matching exactly) towards lexical. ``β = 0``
is the collection-wide convex combination; ``α0`` and ``β`` are chosen together, without judgments, on the
same self-supervised inverse-cloze queries as the collection-wide choice (simsearch.evaluation.unjudged),
and only kept over that choice when they beat it there by more than one standard error. Computing α_q reads
two scores of each list: its cost is timed per query.

Used by ``python -m bench.fusion_unjudged --adaptive``; it is a measurement, not (yet) the service's fusion.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simsearch.evaluation.fusion_fit import ALPHAS
from simsearch.evaluation.metrics import evaluate_run, ndcg_at_k
from simsearch.search.fusion import convex
from simsearch.search.types import Ranked

BETAS = (-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0)
EPS = 1e-6
Lists = list[tuple[Ranked, Ranked]]


def gaps(dense: Ranked, lexical: Ranked, at: int = 10) -> tuple[float, float]:
    """How far each list's first score stands above its ``at``-th (the last when shorter)."""
    gd = dense[0][1] - dense[min(at, len(dense)) - 1][1] if dense else 0.0
    gl = (lexical[0][1] - lexical[min(at, len(lexical)) - 1][1]) / lexical[0][1] if lexical and lexical[0][1] else 0.0
    return gd, gl


@dataclass(frozen=True)
class Adaptive:
    alpha0: float
    beta: float
    median_dense: float
    median_lexical: float

    def alpha(self, dense: Ranked, lexical: Ranked) -> float:
        gd, gl = gaps(dense, lexical)
        z = math.log((gd + EPS) / self.median_dense) - math.log((gl + EPS) / self.median_lexical)
        a0 = min(max(self.alpha0, 0.02), 0.98)
        return 1.0 / (1.0 + math.exp(-(math.log(a0 / (1 - a0)) + self.beta * z)))

    def fuse(self, dense: Ranked, lexical: Ranked) -> Ranked:
        return convex(dense, lexical, self.alpha(dense, lexical))


def medians(lists: Lists) -> tuple[float, float]:
    both = np.array([gaps(d, lex) for d, lex in lists])
    return float(np.median(both[:, 0])) + EPS, float(np.median(both[:, 1])) + EPS


def choose_adaptive(cloze: Lists, fixed_alpha: float) -> tuple[Adaptive, dict[str, Any]]:
    """``α0`` and ``β`` with the best nDCG@10 on the self-supervised queries (query ``i``'s answer is pool
    member ``i``), kept over the collection-wide ``fixed_alpha`` (``β = 0``) only when better by more than one
    standard error of the paired per-query difference."""
    md, ml = medians(cloze)

    def per_query(rule: Adaptive) -> np.ndarray:
        return np.array(
            [
                ndcg_at_k([str(k) for k, _ in rule.fuse(d, lex)[:10]], {str(i): 1}, 10)
                for i, (d, lex) in enumerate(cloze)
            ]
        )

    fixed = Adaptive(fixed_alpha, 0.0, md, ml)
    base = per_query(fixed)
    grid = {(a, b): per_query(Adaptive(a, b, md, ml)) for a in ALPHAS[1:-1] for b in BETAS}
    (a, b), best = max(grid.items(), key=lambda kv: (float(kv[1].mean()), -abs(kv[0][1])))
    diff = best - base
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    kept = float(diff.mean()) > se
    chosen = Adaptive(a, b, md, ml) if kept else fixed
    return chosen, {
        "cloze_queries": len(cloze),
        "fixed_alpha": fixed_alpha,
        "fixed_cloze_ndcg": round(100 * float(base.mean()), 2),
        "best": {"alpha0": a, "beta": b, "cloze_ndcg": round(100 * float(best.mean()), 2)},
        "standard_error": round(100 * se, 2),
        "kept": kept,
        "medians": {"dense_gap": round(md, 4), "lexical_gap": round(ml, 4)},
    }


def evaluate(
    rule: Adaptive, lists: dict[str, tuple[Ranked, Ranked]], id_of: dict[int, str], qrels: dict[str, dict[str, int]]
) -> tuple[float, float, list[float]]:
    """nDCG@10 × 100 over judged queries, the microseconds per query of choosing α_q, and the α_q's."""
    run, alphas, spent = {}, [], 0.0
    for qid, (d, lex) in lists.items():
        started = time.perf_counter()
        a = rule.alpha(d, lex)
        spent += time.perf_counter() - started
        alphas.append(a)
        run[qid] = [id_of[k] for k, _ in convex(d, lex, a)[:100]]
    m = evaluate_run(run, {q: qrels[q] for q in run}, ndcg_k=10, recall_k=100)
    return round(100 * m["ndcg@10"], 2), round(1e6 * spent / max(1, len(lists)), 2), alphas


def ids_of(view: Any, lists: dict[str, tuple[Ranked, Ranked]]) -> dict[int, str]:
    keys = sorted({k for d, lex in lists.values() for k, _ in (*d, *lex)})
    docs: Sequence[Any] = view.documents(keys)
    return {k: (doc.id if doc is not None else "") for k, doc in zip(keys, docs, strict=True)}
