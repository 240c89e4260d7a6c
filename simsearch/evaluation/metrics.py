"""Ranking metrics with BEIR's (pytrec_eval's) definitions.

Written here rather than taken from sentence-transformers' ``InformationRetrievalEvaluator`` because
that evaluator scores relevance as binary and runs its own exhaustive search, while we need graded
relevance (TREC-DL) and must measure the very search path the service runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]  # query id -> ranked document ids, best first


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """nDCG@k with linear gains (trec_eval ``ndcg_cut``)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(ranked[:k]):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate_run(run: Run, qrels: Qrels, *, ndcg_k: int = 10, recall_k: int = 100, mrr_k: int = 10) -> dict[str, float]:
    """Mean metrics over the queries that have at least one relevant document (BEIR's convention)."""
    judged = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    if not judged:
        raise ValueError("no query has a relevant document")
    totals = {f"ndcg@{ndcg_k}": 0.0, f"recall@{recall_k}": 0.0, f"mrr@{mrr_k}": 0.0}
    for q in judged:
        ranked, rels = run.get(q, []), qrels[q]
        totals[f"ndcg@{ndcg_k}"] += ndcg_at_k(ranked, rels, ndcg_k)
        totals[f"recall@{recall_k}"] += recall_at_k(ranked, rels, recall_k)
        totals[f"mrr@{mrr_k}"] += mrr_at_k(ranked, rels, mrr_k)
    return {name: value / len(judged) for name, value in totals.items()}
