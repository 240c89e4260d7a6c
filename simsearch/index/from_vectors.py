"""Building an index folder from vectors encoded elsewhere (training.encode_ray): the same folder as
simsearch.index.build makes, from the same corpus, without encoding it here.

The corpus is checked line by line first, as a build does; its documents are written in corpus order,
position ``i`` beside row ``i`` of the vectors, then :func:`~simsearch.index.build.finish_build` makes the
ANN index (tuned), the lexical index and the checksums, and the folder is published by the atomic rename.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simsearch.ann import backend
from simsearch.data.corpus import CorpusFormat, iter_documents, resolve_corpus, scan_corpus
from simsearch.index import layout
from simsearch.index.build import finish_build, log_sequence
from simsearch.index.docstore import DocStoreWriter
from simsearch.index.manifest import Manifest, ModelInfo, SourceInfo
from simsearch.index.publish import build_lock, prune_builds, publish, staged
from simsearch.models.files import file_sha256

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
    root = Path(root)
    with build_lock(root, name):
        with staged(root, name) as (tmp, final):
            started = time.perf_counter()
            embeddings = np.lib.format.open_memmap(
                tmp / layout.EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(count, model.dimension)
            )
            writer = DocStoreWriter(tmp / layout.DOCS_FILE)
            docs, done = iter_documents(corpus_file, resolved_fmt), 0
            with tqdm(total=count, unit="doc", desc=f"writing {name}", disable=not progress) as bar:
                while chunk := list(islice(docs, CHUNK)):
                    embeddings[done : done + len(chunk)] = vectors[done : done + len(chunk)]
                    writer.add(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
            if done != count or writer.close() != count:
                raise RuntimeError(f"corpus {corpus_file} changed while it was being indexed")
            embeddings.flush()
            info, lexical_info, files = finish_build(
                tmp, embeddings, kind, params or {}, target_recall, lexical, tuning_queries=tuning_queries
            )
            del embeddings
            Manifest(
                name=name,
                build_id=layout.build_id_of(final),
                built_at=datetime.now(UTC),
                build_seconds=round(time.perf_counter() - started + encode_seconds, 3),
                docs_per_s=round(count / encode_seconds, 2) if encode_seconds > 0 else 0.0,
                count=count,
                model=model,
                index=info,
                source=SourceInfo(path=str(corpus_file), format=resolved_fmt, sha256=file_sha256(corpus_file)),
                files=files,
                lexical=lexical_info,
                sequence=log_sequence(root, name),  # as a build from a corpus: it replaces the collection
            ).write(tmp)
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
    return link
