"""Building an index folder from vectors encoded elsewhere (training.encode_ray): the same folder as
simsearch.index.build makes, from the same corpus, without encoding it here.

The corpus is checked line by line first, as a build does; then :func:`~simsearch.index.build.write_build`,
which every build from a corpus runs, writes its documents in corpus order, position ``i`` beside row
``i`` of the vectors, makes the ANN index (tuned), the lexical index and the checksums, and publishes the
folder by the atomic rename.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simsearch.ann import backend
from simsearch.data.corpus import CorpusFormat, resolve_corpus, scan_corpus
from simsearch.index.build import write_build
from simsearch.index.manifest import ModelInfo

CHUNK = 4096


def build_from_vectors(
    corpus: Path,
    vectors: np.ndarray,
    model: ModelInfo,
    root: Path,
    name: str,
    *,
    fmt: CorpusFormat = "auto",
    kind: str = "faiss",
    params: dict[str, Any] | None = None,
    keep_builds: int = 2,
    target_recall: float = 0.95,
    lexical: bool = True,
    encode_seconds: float = 0.0,
    progress: bool = False,
    tuning_queries: np.ndarray | None = None,
) -> Path:
    """Publish ``root/<name>`` from ``corpus`` and its ``vectors`` (row ``i``: document ``i``, encoded by
    ``model`` with its ``document_prefix``); return the published path. ``encode_seconds``: how long the
    encoding took where it ran (the manifest's ``docs_per_s``)."""
    corpus_file, resolved_fmt = resolve_corpus(corpus, fmt)
    count = scan_corpus(corpus_file, resolved_fmt)
    if vectors.shape != (count, model.dimension):
        raise ValueError(f"{vectors.shape} vectors for {count} documents of {model.dimension}-d model {model.path}")
    backend(kind)  # an unknown index type fails before anything is written
    return write_build(
        corpus_file,
        resolved_fmt,
        count,
        model,
        Path(root),
        name,
        lambda start, chunk: vectors[start : start + len(chunk)],
        encode_seconds=lambda: encode_seconds,
        other_seconds=encode_seconds,
        chunk_size=CHUNK,
        kind=kind,
        params=params,
        keep_builds=keep_builds,
        target_recall=target_recall,
        lexical=lexical,
        tuning_queries=tuning_queries,
        progress=progress,
        desc=f"writing {name}",
    )
