"""Write to a collection from files, through the same log the service writes to: upserts, deletes, compaction.

    python -m training.update_index --name scifact --upsert new_docs.jsonl --delete gone.txt [--compact]

``--upsert`` reads a corpus (BEIR ``corpus.jsonl`` or plain text, checked line by line first, as
``build_index`` does) and inserts or replaces its documents by id, in batches (each one all or nothing,
durable when it returns); ``--delete`` reads ids, one a line. A running service picks the batches up
within ``SIMSEARCH_REFRESH_S``. ``--compact`` then folds every write into a new build (published
atomically; reload the service, or let it compact by itself past ``SIMSEARCH_COMPACT_AFTER``).
"""

from __future__ import annotations

import argparse
import sys
from itertools import islice
from pathlib import Path

from tqdm.auto import tqdm

from simsearch.cli import fail, settings_with
from simsearch.collection.compact import CompactionError, compact
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.write_log import LogMismatchError
from simsearch.data.corpus import CorpusError, iter_documents, scan_corpus
from simsearch.index import IndexLoadError
from simsearch.index.publish import BuildLockedError
from simsearch.serving.runtime import StartupError, load_runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-update-index", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--name", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path, help="default: SIMSEARCH_INDEX_DIR")
    p.add_argument("--model", help="bi-encoder folder (default: SIMSEARCH_BI_MODEL): the one the index was built with")
    p.add_argument("--upsert", type=Path, help="documents to insert or replace (corpus.jsonl or .txt)")
    p.add_argument("--delete", type=Path, help="ids to delete, one a line")
    p.add_argument("--compact", action="store_true", help="then fold every write into a new build")
    p.add_argument("--batch-size", type=int, default=256, help="documents per write batch (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not (args.upsert or args.delete or args.compact):
        fail("give --upsert, --delete or --compact")
    settings = settings_with(index_name=args.name, index_dir=args.index_dir, bi_model=args.model)
    try:
        if args.upsert:
            scan_corpus(args.upsert)  # every bad line is reported before anything is written
        # the collection with its models and its passage splitting, exactly as the service opens it
        runtime = load_runtime(settings, writable=True)
    except (CorpusError, FileNotFoundError, StartupError, IndexLoadError, LogMismatchError) as exc:
        fail(str(exc))
    collection = runtime.collection
    try:
        prefix = runtime.bi.entry.document_prefix
        splitter = runtime.splitter
        # 1. upserts, in batches
        if args.upsert:
            docs = iter_documents(args.upsert)
            with tqdm(unit="doc", desc="upserting", disable=args.no_progress) as bar:
                while batch := list(islice(docs, args.batch_size)):
                    passages = splitter.split(batch, prefix)
                    vectors = runtime.encoder.encode(passages.inputs)
                    spans = passages.spans if splitter.passage_tokens is not None else None
                    r = collection.upsert(batch, vectors, spans)
                    bar.update(len(batch))
                    bar.set_postfix(sequence=r.sequence)
        # 2. deletes
        if args.delete:
            ids = [line.strip() for line in args.delete.read_text(encoding="utf-8").splitlines() if line.strip()]
            for start in range(0, len(ids), args.batch_size):
                r = collection.delete(ids[start : start + args.batch_size])
                if r.not_found:
                    print(f"not found: {len(r.not_found)} ids, e.g. {r.not_found[:3]}")
        print(f"{collection.name}: sequence {collection.sequence}, {collection.view().count} documents")
        # 3. compaction
        if args.compact:
            cross = runtime.cross
            if not isinstance(collection, EmbeddedCollection):
                fail(f"the {collection.backend} store merges its segments itself: nothing to compact")
            link = compact(
                collection,
                cross_score=cross.score if cross else None,
                cross_sha256=cross.sha256 if cross else None,
                progress=not args.no_progress,
            )
            print(f"compacted into {link.resolve().name}" if link else "nothing to compact")
    except (CompactionError, BuildLockedError, StartupError, OSError, ValueError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
