"""Where things are in an index root: the one module that spells out file and folder names.

    indexes/
      scifact -> scifact@20261123T203000584292Z-1a2b3c   the published build (a relative symlink)
      scifact@20261123T203000584292Z-1a2b3c/             one immutable build
        manifest.json    what this is (simsearch.index.manifest)
        <ann file>       the vector index (its name is the ANN backend's: index.faiss, vectors.npy)
        docs.sqlite      the documents, keyed by vector position
        embeddings.npy   the encoder's output: re-tune, compact or scan exactly without re-encoding
        passages.npy     with documents split into passages: each vector's document and character span
        lexical/         the BM25 index of the documents, keyed by position (simsearch.lexical)
        cur/             CUR arrays, when fitted (simsearch.index.cur_arrays)
      scifact.writes.sqlite                              the collection's write-ahead log (simsearch.collection)
      .tmp-scifact@<build-id>/                           a build being written (removed if it fails)
      .lock-scifact                                      held while a build of this name runs

Build folders and staging folders carry ``@`` before the build id, a character index names cannot hold,
so the files of ``sci`` never match a pattern meant for ``sci-v2``.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

MANIFEST_FILE = "manifest.json"
DOCS_FILE = "docs.sqlite"
EMBEDDINGS_FILE = "embeddings.npy"
TUNING_QUERIES_FILE = "tuning_queries.npy"  # optional: query vectors the ANN search parameter is tuned on
PASSAGES_FILE = "passages.npy"  # with split documents: row i of the vectors is (document position, start, end)
CUR_DIR = "cur"
LEXICAL_DIR = "lexical"


def new_build_id() -> str:
    """Sortable by time (microseconds), unique by a random tail."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def build_folder(root: Path, name: str, build_id: str) -> Path:
    return Path(root) / f"{name}@{build_id}"


def staging_folder(root: Path, name: str, build_id: str) -> Path:
    return Path(root) / f".tmp-{name}@{build_id}"


def staging_folders(root: Path, name: str) -> list[Path]:
    """Staging folders of builds of ``name`` only (never of another index whose name starts the same)."""
    return sorted(Path(root).glob(f".tmp-{name}@*"))


def builds(root: Path, name: str) -> list[Path]:
    """Every complete build folder of ``name``, oldest first (build ids sort by time)."""
    return sorted((p for p in Path(root).glob(f"{name}@*") if p.is_dir()), key=lambda p: p.name)


def build_id_of(folder: Path) -> str:
    return Path(folder).name.split("@", 1)[1]


def write_log(root: Path, name: str) -> Path:
    return Path(root) / f"{name}.writes.sqlite"


def lock_file(root: Path, name: str) -> Path:
    return Path(root) / f".lock-{name}"


def link_staging(root: Path, name: str) -> Path:
    return Path(root) / f".link-{name}@{secrets.token_hex(4)}"
