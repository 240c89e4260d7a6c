"""Add the lexical (BM25) index to an index built before it existed, as a new build published atomically.

    python -m training.build_lexical --index scifact

Indexes every document's title and text (seconds for thousands of documents); the vectors, documents and
CUR arrays of the current build are kept as they are (hard links). Reload the service afterwards.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simsearch.cli import fail, settings_with
from simsearch.index import IndexLoadError, layout
from simsearch.index.docstore import DocStore
from simsearch.index.manifest import LexicalInfo, Manifest
from simsearch.index.publish import BuildLockedError, publish_derived
from simsearch.lexical import build_lexical


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="simsearch-build-lexical", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--index", help="index name (default: SIMSEARCH_INDEX_NAME)")
    p.add_argument("--index-dir", type=Path)
    args = p.parse_args(argv)
    settings = settings_with(index_name=args.index, index_dir=args.index_dir)
    if not settings.index_path.exists():
        fail(f"index {settings.index_path} does not exist")
    stats: dict = {}

    def write(folder: Path) -> list[str]:
        store = DocStore(folder / layout.DOCS_FILE)
        try:
            stats.update(
                build_lexical(folder / layout.LEXICAL_DIR, ((p, d.content()) for p, d in store.iter_documents()))
            )
        finally:
            store.close()
        return [p.relative_to(folder).as_posix() for p in sorted((folder / layout.LEXICAL_DIR).iterdir())]

    def update(m: Manifest) -> Manifest:
        return m.model_copy(update={"lexical": LexicalInfo(**stats)})

    try:
        link = publish_derived(settings.index_path, write, update)
    except (IndexLoadError, BuildLockedError, OSError) as exc:
        fail(str(exc))
    print(f"published {link} -> {link.resolve().name}: lexical index of {stats['documents']} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
