"""Choose how ``rerank`` blends the cross-encoder with the first stage for one collection, by measurement.

    python -m training.fit_rerank --index scifact --cross models/ce-scifact --data ../shared/data/scifact \
        --split train --candidates hybrid --k-r 100

Scores the first stage's top ``k_r`` of every judged query of the split with the cross-encoder (``k_r``
calls per query: a progress bar), tries the weights 0, 0.1, ..., 1 (``w · CE + (1 − w) · first stage``),
keeps the best nDCG@10 and publishes a new build whose manifest records it for this cross-encoder.
``w = 0`` is a possible outcome: the cross-encoder then does not change the first stage's order. Without
``--data`` the queries are drawn from the collection's documents (simsearch.evaluation.unjudged): a
cross-encoder trained on another corpus is measured on this one before it is trusted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.cli import fail, settings_with
from simsearch.evaluation.rerank_fit import fit_rerank_weight
from simsearch.evaluation.unjudged import choose_rerank_weight_unjudged, live_documents
from simsearch.index import IndexLoadError
from simsearch.index.manifest import CrossEncoderInfo, Manifest, RerankInfo
from simsearch.index.publish import BuildLockedError, publish_derived
from simsearch.search import ModeUnavailableError
from simsearch.serving.runtime import StartupError, load_runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-fit-rerank", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    p.add_argument("--cross", help="the cross-encoder (default: SIMSEARCH_CROSS_MODEL)")
    p.add_argument(
        "--data",
        type=Path,
        help="BEIR folder with queries.jsonl and qrels/<split>.tsv; without: self-supervised queries drawn from the "
        "collection's documents (no judgments needed)",
    )
    p.add_argument("--split", default="train")
    p.add_argument("--candidates", choices=["dense", "lexical", "hybrid"], default="dense")
    p.add_argument("--k-r", type=int, default=100)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.index, index_dir=args.index_dir, cross_model=args.cross)
    if not settings.cross_model:
        fail("give --cross or set SIMSEARCH_CROSS_MODEL")
    try:
        rt = load_runtime(settings, writable=False)
        try:
            assert rt.cross is not None
            if args.data is None:
                found = choose_rerank_weight_unjudged(
                    live_documents(rt.view, 2000),
                    rt.encoder.encode,
                    rt.cross.score,
                    rt.splitter,
                    first_stage=args.candidates,
                    k_r=args.k_r,
                    query_prefix=rt.bi.entry.query_prefix,
                    document_prefix=rt.bi.entry.document_prefix,
                    analyser_name=rt.spec.analyser,
                    fusion=rt.pipeline.fusion or rt.view.default_fusion(),
                )
                if found is None:
                    fail("too few documents of several sentences to draw self-supervised queries from")
            else:
                found = fit_rerank_weight(
                    rt.pipeline,
                    rt.view,
                    rt.direct_models(),
                    args.data,
                    split=args.split,
                    candidates=args.candidates,
                    k_r=args.k_r,
                    progress=not args.no_progress,
                )
                found["chosen_on"] = f"{args.data.name}:{args.split} ({found['queries']} queries, nDCG@10)"
            info = RerankInfo(
                weight=found["weight"],
                cross_encoder=CrossEncoderInfo(
                    path=rt.cross.path, sha256=rt.cross.sha256, max_seq_length=rt.cross.max_seq_length
                ),
                candidates=args.candidates,
                k_r=args.k_r,
                chosen_on=found["chosen_on"],
                validation=found["validation"],
            )
        finally:
            rt.close()

        def update(m: Manifest) -> Manifest:
            return m.model_copy(update={"rerank": info})

        link = publish_derived(settings.index_path, lambda _folder: [], update)
    except (StartupError, IndexLoadError, BuildLockedError, ModeUnavailableError, OSError, ValueError) as exc:
        fail(str(exc))
    print(json.dumps(info.model_dump(), indent=2))
    print(f"published {link} -> {link.resolve().name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
