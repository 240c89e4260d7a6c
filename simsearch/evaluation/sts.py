"""Similarity evaluation from vectors: STS Spearman and exact-search nDCG (the whitening grid's scores)."""

from __future__ import annotations

import numpy as np

from simsearch.ann.exact import ExactIndex
from simsearch.evaluation.metrics import evaluate_run


def sts_spearman(a: np.ndarray, b: np.ndarray, gold: list[float]) -> float:
    """Spearman ×100 of the cosine of row-paired vectors against gold scores."""
    from scipy.stats import spearmanr

    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 100 * float(spearmanr(np.einsum("ij,ij->i", a, b), gold).statistic)


def ndcg_from_vectors(
    docs: np.ndarray,
    doc_ids: list[str],
    queries: np.ndarray,
    query_ids: list[str],
    qrels: dict[str, dict[str, int]],
    k: int = 10,
) -> float:
    """nDCG@k ×100 of exact inner-product search of unit ``queries`` over unit ``docs``."""
    index = ExactIndex(docs.shape[1])
    index.add(docs)
    _, positions = index.search(queries, k)
    run = {q: [doc_ids[p] for p in row if p >= 0] for q, row in zip(query_ids, positions, strict=True)}
    return 100 * evaluate_run(run, {q: qrels[q] for q in query_ids}, ndcg_k=k)[f"ndcg@{k}"]
