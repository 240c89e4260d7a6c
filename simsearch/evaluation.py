"""Retrieval evaluation on a BEIR benchmark through the service's own search path."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.ann.exact import ExactIndex
from simsearch.beir import load_qrels, load_queries
from simsearch.ir_metrics import evaluate_run
from simsearch.search import Searcher


def evaluate_beir(
    searcher: Searcher, data: Path, *, split: str = "test", k: int = 100, progress: bool = True
) -> dict[str, Any]:
    """nDCG@10, Recall@100 and MRR@10 of ``searcher`` on the judged queries of ``data``/``split``."""
    queries = load_queries(data)
    qrels = load_qrels(data, split)
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise ValueError(f"{len(missing)} judged queries are not in queries.jsonl, e.g. {missing[:3]}")
    ids = sorted(qrels)
    started = time.perf_counter()
    vectors = searcher.encode_queries([queries[q] for q in ids], progress=progress)
    encoded = time.perf_counter()
    ranked = searcher.search_vectors(vectors, k)
    searched = time.perf_counter()
    doc_ids = searcher.index.store.ids()
    run = {q: [doc_ids[p] for p, _ in hits] for q, hits in zip(ids, ranked, strict=True)}
    metrics = evaluate_run(run, qrels, ndcg_k=10, recall_k=100, mrr_k=10)
    return {
        **metrics,
        "queries": len(ids),
        "split": split,
        "query_encode_ms": round(1000 * (encoded - started) / len(ids), 3),
        "search_ms": round(1000 * (searched - encoded) / len(ids), 3),
    }


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
