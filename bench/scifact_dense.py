"""SciFact (BEIR) dense retrieval: nDCG@10, Recall@100, MRR@10 and encoding speed.

    python -m bench.scifact_dense [--rebuild]

Uses the index the demo serves (``<index_dir>/scifact``), building it when missing (about 8 minutes on
2 cores) or when ``--rebuild`` is given; evaluation runs through the service's own search code.
Writes ``bench/results/scifact_dense.json``. Published figure for all-MiniLM-L6-v2: 64.5 nDCG@10.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import model_label, write_result
from simsearch.cli import settings_with
from simsearch.data.beir import load_qrels, load_queries
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.index.build import build_index
from simsearch.serving.runtime import load_encoder, load_runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="SciFact BEIR folder (default: <SIMSEARCH_DATA_DIR>/scifact)")
    p.add_argument("--name", default="scifact")
    p.add_argument("--rebuild", action="store_true", help="re-encode the corpus to measure docs/s afresh")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.name)
    data = args.data or settings.data_dir / "scifact"
    if args.rebuild or not settings.index_path.exists():
        build_index(data, load_encoder(settings), settings.index_dir, settings.collection)
    runtime = load_runtime(settings, writable=False)
    manifest = runtime.index.manifest
    metrics = evaluate_beir(runtime.pipeline, runtime.view, runtime.direct_models(), data, split="test")
    # the parts of one search, measured apart: batched query encoding, then the ANN search alone
    queries = load_queries(data)
    texts = [queries[q] for q in sorted(load_qrels(data, "test"))]
    t0 = time.perf_counter()
    vectors = runtime.encoder.encode(texts, prefix=runtime.bi.entry.query_prefix)
    t1 = time.perf_counter()
    runtime.index.ann.search(vectors, 100)
    t2 = time.perf_counter()
    result = {
        "benchmark": "BEIR SciFact test (300 queries), title + text",
        "ndcg@10": round(100 * metrics["ndcg@10"], 2),
        "recall@100": round(100 * metrics["recall@100"], 2),
        "mrr@10": round(100 * metrics["mrr@10"], 2),
        "published_ndcg@10": 64.5,
        "model": model_label(runtime.encoder.path),
        "model_sha256": runtime.encoder.sha256,
        "max_seq_length": manifest.model.max_seq_length,
        "index_type": f"{manifest.index.type}:{manifest.index.params.get('factory', '')}".rstrip(":"),
        "documents": manifest.count,
        "docs_per_s": manifest.docs_per_s,
        "index_built_at": manifest.built_at.isoformat(),
        "query_encode_ms": round(1000 * (t1 - t0) / len(texts), 3),
        "search_ms": round(1000 * (t2 - t1) / len(texts), 3),
        "ms_per_query": metrics["ms_per_query"],
        "queries": metrics["queries"],
        "parameters": {
            "k": 100,
            "batch_size": settings.encode_batch_size,
            "query_prefix": runtime.bi.entry.query_prefix,
        },
    }
    runtime.close()
    path = write_result("scifact_dense", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
