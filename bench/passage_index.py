"""Which index type for a collection split into passages: exact search against HNSW on the real vectors.

    python -m bench.passage_index [--index scifact] [--targets 0.95 0.99] [--repeat 3]

Splitting multiplies the vectors a query searches (SciFact's 5,183 abstracts are 35,289 passages of 64
tokens), and exact (``Flat``) search reads every one: its cost grows with the rows, where HNSW's barely
moves. This reads a built collection's stored passage vectors (``make serve`` builds ``indexes/scifact``),
builds each index type over them as a build would (HNSW tuned to each target recall@10 on held-apart
passages, counted by document), and measures on the test claims, through the same MaxP collapse as dense
search (simsearch.collection.view): nDCG@10, recall@10 of documents against exact search, and the
milliseconds of one single-query search on one thread (the service searches one query per request), with
exact search's in the same run as the reference. Writes bench/results/passage_index.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import faiss
import numpy as np

from bench.common import write_result
from simsearch.ann.tuning import build_tuned
from simsearch.cli import settings_with
from simsearch.collection.view import top_documents
from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.metrics import ndcg_at_k
from simsearch.index import layout
from simsearch.index.open import open_index
from simsearch.serving.runtime import job_model


def searched(index: Any, queries: np.ndarray, pdoc: np.ndarray, k: int, repeat: int) -> tuple[list[list[int]], float]:
    """Each query's top ``k`` documents (the depth dense search asks for), and the median ms of a search."""
    depth = max(4 * k, k + 32)
    out, times = [], []
    for r in range(repeat):
        for q in queries:
            started = time.perf_counter()
            _, positions = index.search(q[None, :], depth)
            times.append(time.perf_counter() - started)
            if r == 0:
                found = positions[0][positions[0] >= 0]
                out.append([key for key, _ in top_documents(pdoc[found], -np.arange(len(found), dtype=np.float32), k)])
    return out, round(1000 * float(np.median(times)), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--index", default="scifact")
    p.add_argument("--data", default="scifact", help="the BEIR folder under SIMSEARCH_DATA_DIR it was built from")
    p.add_argument("--targets", nargs="+", type=float, default=[0.95, 0.99])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--result", default="passage_index")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.index)
    index = open_index(settings.index_path)
    if index.passages is None:
        raise SystemExit(f"{settings.index_path} is not split into passages")
    pdoc = np.ascontiguousarray(index.passages[:, 0])
    vectors = np.ascontiguousarray(np.load(index.path / layout.EMBEDDINGS_FILE, allow_pickle=False), np.float32)
    ids = [d.id for d in index.store.get(list(range(index.manifest.count)))]
    data = settings.data_dir / args.data
    qrels = load_qrels(data, "test")
    texts = load_queries(data)
    qids = [q for q in sorted(qrels) if q in texts]
    loaded = job_model(settings)
    queries = loaded.model.encode([loaded.entry.query_prefix + texts[q] for q in qids])
    faiss.omp_set_num_threads(1)
    rows, exact_docs = [], None
    for factory, target in [("Flat", None), *[("HNSW32", t) for t in args.targets]]:
        started = time.perf_counter()
        built, info = build_tuned(vectors, factory, target_recall=target or 0.95, groups=pdoc)
        build_s = round(time.perf_counter() - started, 1)
        docs, ms = searched(built.index, queries, pdoc, 10, args.repeat)
        if exact_docs is None:
            exact_docs = docs
        ndcg = np.mean([ndcg_at_k([ids[d] for d in got], qrels[q], 10) for q, got in zip(qids, docs, strict=True)])
        recall = np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(docs, exact_docs, strict=True)])
        row = {
            "factory": factory,
            "target_recall": target,
            "tuned": info.get("tuned", {}),
            "build_recall_at_10": info["recall_at_10"],
            "build_s": build_s,
            "ndcg@10": round(100 * float(ndcg), 2),
            "document_recall_at_10_vs_exact": round(float(recall), 4),
            "search_ms_p50": ms,
        }
        rows.append(row)
        print(row, flush=True)
    flat_ms = rows[0]["search_ms_p50"]
    for row in rows:
        row["speedup_vs_flat"] = round(flat_ms / max(row["search_ms_p50"], 1e-6), 1)
    path = write_result(
        args.result,
        {
            "benchmark": f"index types over {len(vectors)} passage vectors of {index.manifest.count} documents "
            f"({args.index}), searched with the {len(qids)} test queries",
            "parameters": {**vars(args), "passages": len(vectors), "documents": index.manifest.count},
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
