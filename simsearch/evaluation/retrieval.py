"""Retrieval evaluation on a BEIR benchmark through the search pipeline the service runs, in any mode."""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.metrics import evaluate_run
from simsearch.search import Models, SearchParams, SearchPipeline, SearchView, run_sync


def evaluate_beir(
    pipeline: SearchPipeline,
    view: SearchView,
    models: Models,
    data: Path,
    *,
    split: str = "test",
    params: SearchParams | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """nDCG@10, Recall@100 and MRR@10 of ``pipeline`` on the judged queries of ``data``/``split``, with the
    cross-encoder calls and the wall time of one search (one query at a time, as a lone client sees it).

    ``params.k`` is raised to 100 so that Recall@100 is measured; ``rerank`` then re-scores ``k_r``."""
    params = replace(params or SearchParams(), k=max((params or SearchParams()).k, 100))
    queries = load_queries(data)
    qrels = load_qrels(data, split)
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise ValueError(f"{len(missing)} judged queries are not in queries.jsonl, e.g. {missing[:3]}")
    ids = sorted(qrels)
    run: dict[str, list[str]] = {}
    seconds, calls = [], []
    for q in tqdm(ids, desc=f"{params.mode} search", unit="query", disable=not progress):
        started = time.perf_counter()
        result = run_sync(pipeline.search(view, models, queries[q], params))
        seconds.append(time.perf_counter() - started)
        calls.append(result.cross_encoder_calls)
        run[q] = [h.id for h in result.hits]
    metrics = evaluate_run(run, qrels, ndcg_k=10, recall_k=100, mrr_k=10)
    return {
        **metrics,
        "queries": len(ids),
        "split": split,
        "mode": params.mode,
        "k_r": params.k_r if params.mode in ("rerank", "cur") else None,
        "candidates": params.candidates if params.mode == "rerank" else None,
        "fusion": asdict(params.fusion) if params.fusion else None,
        "cross_encoder_calls_per_query": float(np.mean(calls)),
        "ms_per_query": round(1000 * float(np.mean(seconds)), 3),
        "p50_ms_per_query": round(1000 * float(np.median(seconds)), 3),
    }
