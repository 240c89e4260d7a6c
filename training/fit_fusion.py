"""Choose how hybrid search fuses dense and lexical results for one collection, by measurement.

    python -m training.fit_fusion --index scifact --data ../shared/data/scifact --split train

Scores dense only, reciprocal rank fusion and the convex combination at α = 0 ... 1 on the split's
judgments (nDCG@10, through the pipeline's retrievers and fusion), keeps the best (ties: the simpler),
and publishes a new build whose manifest records the choice and every validation figure. Without
``--data`` (no judgments) the same candidates are scored on self-supervised queries drawn from the
collection's documents (simsearch.evaluation.unjudged). Reload the service afterwards.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.cli import fail, settings_with
from simsearch.evaluation.fusion_fit import choose_and_publish, default_fusion_info, fit_fusion
from simsearch.evaluation.unjudged import fit_unjudged
from simsearch.index import IndexLoadError
from simsearch.index.manifest import FusionInfo
from simsearch.index.publish import BuildLockedError
from simsearch.search import ModeUnavailableError
from simsearch.serving.runtime import StartupError, load_runtime


def choose(index: str | None, index_dir: Path | None, data: Path | None, split: str, progress: bool) -> FusionInfo:
    settings = settings_with(index_name=index, index_dir=index_dir)
    runtime = load_runtime(settings, writable=False)
    try:
        if data is None:  # no judgments: self-supervised queries from the collection's own documents
            info = fit_unjudged(
                runtime.view,
                runtime.encoder.encode,
                runtime.splitter,
                query_prefix=runtime.bi.entry.query_prefix,
                document_prefix=runtime.bi.entry.document_prefix,
            )
            if info is None:
                print("too few documents to draw self-supervised queries from: the stated default", file=sys.stderr)
            return info or default_fusion_info()
        return fit_fusion(
            runtime.view,
            runtime.direct_models(),
            data,
            split=split,
            query_prefix=runtime.bi.entry.query_prefix,
            progress=progress,
        )
    finally:
        runtime.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-fit-fusion", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    p.add_argument("--data", type=Path, help="BEIR folder with queries.jsonl and qrels/<split>.tsv")
    p.add_argument("--split", default="train", help="the validation split (never the test split you report)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.split == "test":
        print("warning: choosing the fusion on the test split makes test figures optimistic", file=sys.stderr)
    settings = settings_with(index_name=args.index, index_dir=args.index_dir)
    try:
        info = choose(args.index, args.index_dir, args.data, args.split, not args.no_progress)

        link = choose_and_publish(settings.index_path, info)
    except (StartupError, IndexLoadError, BuildLockedError, ModeUnavailableError, OSError, ValueError) as exc:
        fail(str(exc))
    print(json.dumps(info.model_dump(), indent=2))
    print(f"published {link} -> {link.resolve().name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
