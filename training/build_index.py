"""Build an index folder from a corpus.

    python -m training.build_index --corpus ../shared/data/scifact --name scifact

Reads BEIR ``corpus.jsonl`` (or a folder holding it) or plain text (one document a line), checks every
line first, encodes with a progress bar and publishes ``<index_dir>/<name>`` atomically. Unset options
fall back to the settings (``SIMSEARCH_*`` environment variables or ``.env``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simsearch.api.spec import CollectionSpec, PassageSpec
from simsearch.cli import fail, settings_with
from simsearch.data.corpus import CorpusError
from simsearch.evaluation.fusion_fit import UnjudgedFit, fusion_at_build
from simsearch.index.build import build_index, splitter_for
from simsearch.index.manifest import Manifest
from simsearch.index.open import open_index
from simsearch.search import DirectModels
from simsearch.serving.runtime import StartupError, job_model, policy_of, registered_name, registry_for


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="simsearch-build-index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--corpus", type=Path, required=True, help="corpus.jsonl, a BEIR folder, or a .txt file")
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--format", choices=["auto", "beir", "text"], default="auto")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument(
        "--model",
        help="the bi-encoder: a name in the model registry (default: the collection's, else `default`: "
        "SIMSEARCH_BI_MODEL), or a folder",
    )
    p.add_argument("--index-type", default="faiss", help="ANN backend: faiss or exact (default: %(default)s)")
    p.add_argument(
        "--factory",
        default="auto",
        help="FAISS index-factory string, or auto: Flat up to 100,000 documents, HNSW32 above, "
        "IVF+PQ above 5,000,000 (default: %(default)s)",
    )
    p.add_argument(
        "--target-recall",
        type=float,
        default=0.95,
        help="recall@10 against exact search that approximate indexes are tuned to (default: %(default)s)",
    )
    p.add_argument(
        "--tuning-queries",
        type=Path,
        help="queries like the ones the index will serve (a .txt file, one per line, or a BEIR queries.jsonl): "
        "approximate indexes are tuned to the target recall on them instead of on held-apart documents, "
        "and compaction tunes on them again. Never the queries you evaluate on.",
    )
    p.add_argument("--batch-size", type=int, help="default: SIMSEARCH_ENCODE_BATCH_SIZE")
    p.add_argument(
        "--document-prefix",
        help="with --model a folder: what goes before every document (a registered model has its own)",
    )
    p.add_argument(
        "--analyser",
        choices=["english", "chinese", "standard"],
        help="a new collection's lexical analyser (default: english; an existing collection keeps its own)",
    )
    p.add_argument(
        "--passage-tokens",
        type=int,
        help="a new collection's passages: split documents longer than this many tokens (default: auto, the "
        "measured default fitted to the model's window; 0: one vector per document, longer texts cut)",
    )
    p.add_argument("--overlap-tokens", type=int, default=0, help="with --passage-tokens: tokens of overlap")
    p.add_argument("--keep-builds", type=int, default=2, help="builds of this name kept on disk")
    p.add_argument("--if-missing", action="store_true", help="do nothing when the index already exists")
    p.add_argument(
        "--fusion-split",
        default="train",
        help="choose hybrid search's fusion in the build, before it is published: on this split's judgements "
        "when the corpus is a BEIR folder with at least 20 judged queries, else on self-supervised queries drawn "
        "from the documents (default: %(default)s; 'none' keeps the stated default)",
    )
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def read_queries(path: Path) -> list[str]:
    """Query texts from a .txt file (one per line) or a JSON-lines file of objects with a ``text`` field."""
    import json

    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        try:
            return [str(json.loads(line)["text"]) for line in lines]
        except (ValueError, KeyError, TypeError) as exc:
            fail(f"{path}: every line must be a JSON object with a 'text' field ({exc})")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_with(index_name=args.name, index_dir=args.index_dir, encode_batch_size=args.batch_size)
    try:
        name = settings.collection
    except ValueError as exc:
        fail(str(exc))
    if args.if_missing and settings.index_path.exists():
        print(f"{settings.index_path} exists; nothing to do (--if-missing)")
        return 0
    # 1. the collection's specification (kept when it exists) and its model, from the registry
    existing = Manifest.read(settings.index_path).spec if settings.index_path.exists() else None
    if existing is not None and args.model and args.model != existing.model:
        fail(f"collection {name!r} was created with model {existing.model!r}: rebuild it with that model, or delete it")
    try:
        loaded = job_model(
            settings, args.model or (existing.model if existing else None), document_prefix=args.document_prefix
        )
    except StartupError as exc:
        fail(str(exc))
    registered = (
        registered_name(settings, loaded.entry.path)
        if loaded.name not in registry_for(settings).entries
        else loaded.name
    )
    spec = existing
    asked: dict[str, Any] = {}
    if args.analyser:
        asked["analyser"] = args.analyser
    if args.passage_tokens == 0:
        asked["passages"] = "none"
    elif args.passage_tokens:
        asked["passages"] = PassageSpec(tokens=args.passage_tokens, overlap=args.overlap_tokens)
    if spec is not None and any(getattr(spec, k) != v for k, v in asked.items()):
        fail(f"collection {name!r} exists with {spec.model_dump(mode='json')}: its specification is fixed")
    if spec is None and (registered is not None or asked):
        if registered is None:
            fail("--analyser and --passage-tokens record a specification: give --model a registered model's name")
        spec = CollectionSpec(model=registered, index=policy_of(args.factory), **asked)  # type: ignore[arg-type]
    # 2. hybrid search's fusion, measured on the corpus's own judgements (a BEIR folder with enough of them)
    #    in the build itself, before it is published
    finish = None
    if args.fusion_split != "none":
        finish = fusion_at_build(
            args.corpus,
            DirectModels(loaded.model),
            query_prefix=loaded.entry.query_prefix,
            split=args.fusion_split,
            progress=not args.no_progress,
            unjudged=UnjudgedFit(
                loaded.model.encode,
                splitter_for(loaded.model, spec, loaded.entry.document_prefix),
                loaded.entry.query_prefix,
                loaded.entry.document_prefix,
            ),
        )
    # 3. check every line, encode, write into a temporary folder, publish
    params = {"factory": args.factory} if args.index_type == "faiss" else {}
    try:
        path = build_index(
            args.corpus,
            loaded.model,
            settings.index_dir,
            name,
            fmt=args.format,
            kind=args.index_type,
            params=params,
            document_prefix=loaded.entry.document_prefix,
            keep_builds=args.keep_builds,
            target_recall=args.target_recall,
            progress=not args.no_progress,
            tuning_queries=read_queries(args.tuning_queries) if args.tuning_queries else None,
            query_prefix=loaded.entry.query_prefix,
            model_name=registered,
            spec=spec,
            finish=finish,
        )
    except (CorpusError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    # 4. report
    index = open_index(path)
    m = index.manifest
    print(
        f"built {path} -> {index.path.name}: {m.count} documents, {m.model.dimension}-d, "
        f"{m.index.type} {m.index.params}, {m.docs_per_s:.1f} docs/s, {m.build_seconds:.1f} s"
    )
    index.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
