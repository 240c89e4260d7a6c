"""Choosing how much ``rerank`` trusts the cross-encoder, by measurement on a validation split.

Each validation query's first-stage candidates (``k_r`` of them, with their scores) are scored once by
the cross-encoder through the search pipeline's own stages; every weight ``w`` in 0, 0.1, ..., 1 then
ranks them by ``w · CE + (1 − w) · first stage`` (simsearch.search.rescore.interpolate). The best nDCG@10
wins (ties: the larger w). ``w = 0`` keeps the first stage's order, so a cross-encoder that hurts is
measured as such and switched off rather than trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.metrics import evaluate_run
from simsearch.search import Models, SearchParams, SearchPipeline, SearchView, run_sync
from simsearch.search.pipeline import plan_for
from simsearch.search.rescore import interpolate
from simsearch.search.types import FirstStage

WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def rerank_scores(
    pipeline: SearchPipeline,
    view: SearchView,
    models: Models,
    queries: dict[str, str],
    *,
    candidates: FirstStage = "dense",
    k_r: int = 100,
    progress: bool = False,
) -> dict[str, tuple[list[int], list[float], list[float]]]:
    """Per query: the candidates' keys, first-stage scores and cross-encoder scores."""
    params = SearchParams(mode="rerank", candidates=candidates, k_r=k_r)
    plan = plan_for(params)
    out = {}
    for qid, text in tqdm(queries.items(), desc="first stage + cross-encoder", unit="query", disable=not progress):
        q = run_sync(pipeline._inputs(view, models, text, params, plan))
        first = pipeline._retrieve(view, plan, q, params, k_r)
        texts = view.texts([k for k, _ in first])
        cross = run_sync(models.score([(q.cross_text, t) for t in texts]))
        out[qid] = ([k for k, _ in first], [s for _, s in first], [float(x) for x in cross])
    return out


def fit_rerank_weight(
    pipeline: SearchPipeline,
    view: SearchView,
    models: Models,
    data: Path,
    *,
    split: str = "train",
    candidates: FirstStage = "dense",
    k_r: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """``{"weight", "validation": {w: nDCG@10}, "queries"}`` on ``data``'s ``split`` judgments."""
    all_queries, qrels = load_queries(data), load_qrels(data, split)
    queries = {q: all_queries[q] for q in sorted(qrels) if q in all_queries}
    if not queries:
        raise ValueError(f"{data} has no judged queries in split {split!r}")
    scored = rerank_scores(pipeline, view, models, queries, candidates=candidates, k_r=k_r, progress=progress)
    keys = sorted({k for ks, _, _ in scored.values() for k in ks})
    doc_id = dict(zip(keys, (d.id if d else "" for d in view.documents(keys)), strict=True))
    validation = {}
    for w in WEIGHTS:
        run = {}
        for qid, (ks, first, cross) in scored.items():
            blended = interpolate(first, cross, w)
            order = sorted(range(len(ks)), key=lambda i: -blended[i])
            run[qid] = [doc_id[ks[i]] for i in order]
        validation[f"{w:.1f}"] = round(100 * evaluate_run(run, {q: qrels[q] for q in run})["ndcg@10"], 2)
    best = max(WEIGHTS, key=lambda w: (validation[f"{w:.1f}"], w))
    return {"weight": best, "validation": validation, "queries": len(queries)}
