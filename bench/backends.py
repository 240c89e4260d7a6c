"""Inference backends side by side: torch, ONNX Runtime fp32, ONNX Runtime int8 (dynamic quantisation).

    python -m bench.backends

For the bi-encoder (all-MiniLM-L6-v2): STS-B test Spearman, SciFact nDCG@10 (corpus re-encoded by each
backend), one query's encoding time (p50) and batched throughput. For the STS-B cross-encoder of
``bench.cosent_stsb_en``: STS-B test Spearman and pairs per second. Speeds are measured in one run,
back to back, and given as ratios to torch. Writes bench/results/backends.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.data.corpus import iter_documents
from simsearch.data.pairs import read_pairs
from simsearch.evaluation.sts import ndcg_from_vectors, sts_spearman
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.onnx import Backend

BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")
CROSS = Path("models/bench/stsb-en/cross-cosent")


def timed(fn: Any, *args: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def main() -> int:
    settings = settings_with()
    data = settings.data_dir
    sts = read_pairs(data / "stsb-en", "test")
    docs = list(iter_documents(data / "scifact"))
    doc_texts, doc_ids = [d.content() for d in docs], [d.id for d in docs]
    qrels = load_qrels(data / "scifact", "test")
    queries = load_queries(data / "scifact")
    qids = sorted(qrels)
    q_texts = [queries[q] for q in qids]
    rows: list[dict[str, Any]] = []
    for backend in BACKENDS:
        enc = BiEncoder.load(settings.bi_model, backend=backend, batch_size=32)
        enc.encode(q_texts[:32])
        single = []
        for q in q_texts[:100]:
            _, s = timed(enc.encode, [q])
            single.append(s)
        batch, seconds = timed(enc.encode, q_texts)
        corpus, corpus_s = timed(enc.encode, doc_texts)
        rows.append(
            {
                "model": "bi-encoder all-MiniLM-L6-v2",
                "backend": backend,
                "stsb_test_spearman": round(sts_spearman(enc.encode(sts.a), enc.encode(sts.b), sts.scores), 2),
                "scifact_ndcg@10": round(ndcg_from_vectors(corpus, doc_ids, batch, qids, qrels), 2),
                "single_query_ms_p50": round(1000 * float(np.median(single)), 2),
                "queries_per_s_batch32": round(len(q_texts) / seconds, 1),
                "documents_per_s": round(len(doc_texts) / corpus_s, 1),
            }
        )
        print(rows[-1])
    if CROSS.is_dir():
        pairs = list(zip(sts.a, sts.b, strict=True))
        for backend in BACKENDS:
            ce = CrossScorer.load(str(CROSS), backend=backend, batch_size=64)
            ce.score(pairs[:64])
            scores, seconds = timed(ce.score, pairs)
            from scipy.stats import spearmanr

            rows.append(
                {
                    "model": "cross-encoder (STS-B, CoSENT)",
                    "backend": backend,
                    "stsb_test_spearman": round(100 * float(spearmanr(scores, sts.scores).statistic), 2),
                    "pairs_per_s": round(len(pairs) / seconds, 1),
                }
            )
            print(rows[-1])
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"] and r["backend"] == "torch")
        for key in ("queries_per_s_batch32", "documents_per_s", "pairs_per_s"):
            if key in row:
                row[f"{key}_vs_torch"] = round(row[key] / base[key], 2)
    path = write_result(
        "backends",
        {
            "benchmark": "torch vs ONNX Runtime fp32 vs int8 (MatMul weights, per channel), same run",
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
