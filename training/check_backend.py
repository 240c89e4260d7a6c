"""Check a faster backend of a collection's model against the reference on the collection's own text, and
record the figures in its manifest (a new build, published atomically).

    python -m training.check_backend --name scifact --backend onnx-int8 [--sample 1000] [--queries 200]

The mean cosine between the reference's (torch, fp32) and the candidate's vectors of each sampled document
and query, and recall@10 of the candidate's top 10 against the reference's (simsearch.models.backend_check).
Exits 1 when the backend does not pass: serve the collection's model on it only when it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsearch.cli import fail, settings_with
from simsearch.evaluation.unjudged import live_documents
from simsearch.index.publish import BuildLockedError, publish_derived
from simsearch.models.backend_check import check_backend, encoder_for
from simsearch.serving.runtime import StartupError, load_runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-check-backend", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--name", help="collection (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    p.add_argument("--backend", choices=["onnx", "onnx-int8"], default="onnx-int8")
    p.add_argument("--sample", type=int, default=1000, help="documents sampled (default: %(default)s)")
    p.add_argument("--queries", type=int, default=200, help="queries from their first sentences")
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.name, index_dir=args.index_dir)
    try:
        rt = load_runtime(settings, writable=False)
    except StartupError as exc:
        fail(str(exc))
    try:
        docs = live_documents(rt.view, args.sample)
        entry = rt.bi.entry
        # 1. the reference: the model's own weights on torch, whatever the service's backend is
        reference = encoder_for(entry.path, "torch")
        # 2. the candidate: the same weights, exported
        candidate = encoder_for(entry.path, args.backend, threads=settings.torch_threads)
        result = check_backend(
            docs,
            reference,
            candidate,
            backend=args.backend,
            queries=args.queries,
            document_prefix=entry.document_prefix,
            query_prefix=entry.query_prefix,
        )
    except (RuntimeError, ValueError) as exc:
        fail(str(exc))
    finally:
        rt.close()
    # 3. the figures, in the collection's manifest
    try:
        publish_derived(
            settings.index_path,
            lambda _: [],
            lambda m: m.model_copy(update={"backend_checks": {**m.backend_checks, args.backend: result}}),
        )
    except BuildLockedError as exc:
        fail(str(exc))
    print(json.dumps(result.model_dump(), indent=2))
    if not result.passed:
        print(f"{args.backend} does not agree with the reference well enough: keep the collection's model off it")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
