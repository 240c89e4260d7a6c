"""Per-query fusion weights (issue 37, point 3) on judged queries: nDCG@10 of a fusion whose α may depend
on the query (simsearch.search.fusion.query_alpha), with the time choosing α takes per query.

Used by ``python -m bench.fusion_unjudged --adaptive``.
"""

from __future__ import annotations

import time

from simsearch.evaluation.metrics import evaluate_run
from simsearch.search.fusion import Fusion, convex, fuse, query_alpha
from simsearch.search.types import Ranked


def evaluate(
    rule: Fusion, lists: dict[str, tuple[Ranked, Ranked]], id_of: dict[int, str], qrels: dict[str, dict[str, int]]
) -> tuple[float, float, list[float]]:
    """nDCG@10 × 100 over judged queries, the microseconds per query of choosing α_q, and the α_q's."""
    run, alphas, spent = {}, [], 0.0
    for qid, (d, lex) in lists.items():
        started = time.perf_counter()
        a = query_alpha(d, lex, rule) if rule.method == "convex" else float("nan")
        spent += time.perf_counter() - started
        alphas.append(a)
        fused = convex(d, lex, a) if rule.method == "convex" else fuse(d, lex, rule)
        run[qid] = [id_of[k] for k, _ in fused[:100]]
    m = evaluate_run(run, {q: qrels[q] for q in run}, ndcg_k=10, recall_k=100)
    return round(100 * m["ndcg@10"], 2), round(1e6 * spent / max(1, len(lists)), 2), alphas
