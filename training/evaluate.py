"""Evaluate an index on a BEIR benchmark in any search mode, through the pipeline the service runs.

    python -m training.evaluate --data ../shared/data/scifact --name scifact --mode rerank --k-r 100 \
        --cross models/ce-scifact --out report.json

Reports nDCG@10, Recall@100, MRR@10, cross-encoder calls per query and the wall time of one search,
as JSON (printed, and written to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.atomic import atomic_write_json
from simsearch.cli import fail, settings_with
from simsearch.evaluation.retrieval import evaluate_beir
from simsearch.search import PLANS, Fusion, ModeUnavailableError, SearchParams
from simsearch.serving.runtime import StartupError, load_runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, required=True, help="BEIR folder with queries.jsonl and qrels/")
    p.add_argument("--split", default="test")
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument("--model", help="bi-encoder folder (default: SIMSEARCH_BI_MODEL)")
    p.add_argument("--cross", help="cross-encoder folder for rerank and cur (default: SIMSEARCH_CROSS_MODEL)")
    p.add_argument("--mode", choices=sorted(PLANS), default="dense", help="search mode (default: %(default)s)")
    p.add_argument("--k-r", type=int, default=100, help="cross-encoder candidates per query (default: %(default)s)")
    p.add_argument("--candidates", choices=["dense", "lexical", "hybrid"], default="dense", help="rerank's first stage")
    p.add_argument("--fusion", choices=["rrf", "convex", "dense"], help="hybrid: override the collection's fusion")
    p.add_argument("--alpha", type=float, default=0.5, help="with --fusion convex: the weight of dense scores")
    p.add_argument("--out", type=Path, help="also write the report here as JSON")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = settings_with(
        index_name=args.name, index_dir=args.index_dir, bi_model=args.model, cross_model=args.cross
    )
    # 1. the index and the models, as the service loads them
    try:
        runtime = load_runtime(settings, writable=False)
    except StartupError as exc:
        fail(str(exc))
    # 2. every judged query through the pipeline
    try:
        reason = runtime.pipeline.unavailable(runtime.view, runtime.direct_models(), args.mode)
        if reason:
            raise ModeUnavailableError(reason)
        metrics = evaluate_beir(
            runtime.pipeline,
            runtime.view,
            runtime.direct_models(),
            args.data,
            split=args.split,
            params=SearchParams(
                mode=args.mode,
                k_r=args.k_r,
                candidates=args.candidates,
                fusion=Fusion(args.fusion, alpha=args.alpha) if args.fusion else None,
            ),
            progress=not args.no_progress,
        )
    except (OSError, ValueError) as exc:  # ModeUnavailableError is a ValueError
        fail(str(exc))
    finally:
        runtime.close()
    # 3. the report
    fusion = runtime.collection.fusion
    report = {
        "index": runtime.index.name,
        "build_id": runtime.index.manifest.build_id,
        # how hybrid's fusion was chosen (judged queries, self-supervised queries, or the stated default)
        "collection_fusion": fusion.model_dump(mode="json") if fusion is not None else {"chosen_on": "default"},
        "model": runtime.encoder.path,
        "cross_model": runtime.cross.path if runtime.cross else None,
        **metrics,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        atomic_write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
