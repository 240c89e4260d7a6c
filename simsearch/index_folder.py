"""Index folders: build one atomically, open one safely.

Layout under the index root::

    indexes/
      scifact -> scifact@20261123T203000Z-1a2b3c     (a relative symlink, swapped atomically)
      scifact@20261123T203000Z-1a2b3c/
        manifest.json    what this is (simsearch.manifest)
        index.faiss      the vector index (file name set by the backend)
        docs.sqlite      the document store, keyed by vector position
        embeddings.npy   the encoder's output, kept to re-tune or rebuild the index without re-encoding

A build writes into ``.tmp-<name>-<id>/`` and only a complete, checksummed folder is renamed into
place; the ``<name>`` link then moves to it in one ``os.replace``. A reader therefore sees the old
index or the new one, and a build killed at any point leaves the previous index loadable.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from simsearch.ann import AnnIndex, backend, create_index
from simsearch.ann.tuning import build_tuned
from simsearch.atomic import fsync_dir
from simsearch.corpus import CorpusFormat, Document, iter_documents, resolve_corpus, scan_corpus
from simsearch.cur_store import CurArrays, load_cur
from simsearch.docstore import DocStore, DocStoreWriter
from simsearch.encoders import BiEncoder
from simsearch.manifest import IndexInfo, Manifest, ManifestError, ModelInfo, SourceInfo
from simsearch.model_files import file_sha256

DOCS_FILE = "docs.sqlite"
EMBEDDINGS_FILE = "embeddings.npy"


class IndexLoadError(RuntimeError):
    """An index folder that cannot be served: missing, corrupt, or built with another model."""


@dataclass
class LoadedIndex:
    path: Path  # the real build folder (the symlink resolved once, so every file comes from one build)
    manifest: Manifest
    ann: AnnIndex
    store: DocStore
    cur: CurArrays | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    def close(self) -> None:
        self.store.close()


def _new_build_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def _chunks(docs: Iterator[Document], size: int) -> Iterator[list[Document]]:
    while chunk := list(islice(docs, size)):
        yield chunk


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())
        else:
            fsync_dir(path)
    fsync_dir(folder)


def build_index(
    corpus: Path,
    encoder: BiEncoder,
    root: Path,
    name: str,
    *,
    fmt: CorpusFormat = "auto",
    kind: str = "faiss",
    params: dict[str, Any] | None = None,
    document_prefix: str = "",
    chunk_size: int = 256,
    keep_builds: int = 2,
    target_recall: float = 0.95,
    progress: bool = True,
) -> Path:
    """Validate, encode and write ``root/<name>``; return the published path (the symlink).

    With ``kind="faiss"`` the index type follows the corpus size unless ``params["factory"]`` names one
    (simsearch.ann.tuning); approximate types are tuned to ``target_recall`` and the recall reached is
    recorded in the manifest."""
    corpus_file, resolved_fmt = resolve_corpus(corpus, fmt)
    count = scan_corpus(corpus_file, resolved_fmt)  # every bad line is reported before encoding starts
    backend(kind)  # an unknown index type fails now, not after the encoding
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with build_lock(root, name):
        final = _build(
            corpus_file,
            resolved_fmt,
            count,
            encoder,
            root,
            name,
            kind,
            params or {},
            document_prefix,
            chunk_size,
            target_recall,
            progress,
        )
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
    return link


@contextmanager
def build_lock(root: Path, name: str) -> Iterator[None]:
    """One build of ``name`` at a time; the holder removes what killed builds left behind."""
    with (root / f".lock-{name}").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another build of {name!r} is running in {root}") from None
        for stale in root.glob(f".tmp-{name}-*"):  # no build of this name runs now: these are leftovers
            shutil.rmtree(stale, ignore_errors=True)
        yield


@contextmanager
def _staged(root: Path, name: str) -> Iterator[tuple[Path, Path]]:
    """A private folder for a new build, and the name it will have. When the block succeeds the folder is
    flushed to disk and renamed into place; on any error or interruption it is removed."""
    build_id = _new_build_id()
    tmp, final = root / f".tmp-{name}-{build_id}", root / f"{name}@{build_id}"
    tmp.mkdir()
    try:
        yield tmp, final
        _fsync_tree(tmp)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _build_id(final: Path) -> str:
    return final.name.split("@", 1)[1]


def _build(
    corpus_file: Path,
    resolved_fmt: Literal["beir", "text"],
    count: int,
    encoder: BiEncoder,
    root: Path,
    name: str,
    kind: str,
    params: dict[str, Any],
    document_prefix: str,
    chunk_size: int,
    target_recall: float,
    progress: bool,
) -> Path:
    with _staged(root, name) as (tmp, final):
        started = time.perf_counter()
        encode_seconds = 0.0
        embeddings = np.lib.format.open_memmap(
            tmp / EMBEDDINGS_FILE, mode="w+", dtype=np.float32, shape=(count, encoder.dim)
        )
        writer = DocStoreWriter(tmp / DOCS_FILE)
        done = 0
        with tqdm(total=count, unit="doc", desc=f"encoding {name}", disable=not progress) as bar:
            for chunk in _chunks(iter_documents(corpus_file, resolved_fmt), chunk_size):
                t0 = time.perf_counter()
                vectors = encoder.encode([d.content() for d in chunk], prefix=document_prefix)
                encode_seconds += time.perf_counter() - t0
                embeddings[done : done + len(chunk)] = vectors
                writer.add(chunk)
                done += len(chunk)
                bar.update(len(chunk))
        if done != count or writer.close() != count:
            raise RuntimeError(f"corpus {corpus_file} changed while it was being indexed")
        embeddings.flush()
        ann: AnnIndex
        if kind == "faiss":
            ann, measured = build_tuned(embeddings, params.get("factory", "auto"), target_recall=target_recall)
            recall: float | None = measured["recall_at_10"]
        else:
            ann = create_index(kind, encoder.dim, params)
            ann.add(embeddings)
            recall = 1.0 if kind == "exact" else None
        del embeddings
        ann_file = ann.save(tmp)
        files = {p.name: file_sha256(p) for p in (ann_file, tmp / DOCS_FILE, tmp / EMBEDDINGS_FILE)}
        manifest = Manifest(
            name=name,
            build_id=_build_id(final),
            built_at=datetime.now(UTC),
            build_seconds=round(time.perf_counter() - started, 3),
            docs_per_s=round(count / encode_seconds, 2) if encode_seconds > 0 else 0.0,
            count=count,
            model=ModelInfo(
                path=encoder.path,
                sha256=encoder.sha256,
                dimension=encoder.dim,
                max_seq_length=encoder.max_seq_length,
                document_prefix=document_prefix,
                whitening=encoder.whitening,
            ),
            index=IndexInfo(type=kind, params=ann.params(), recall_at_10=recall),
            source=SourceInfo(path=str(corpus_file), format=resolved_fmt, sha256=file_sha256(corpus_file)),
            files=files,
        )
        manifest.write(tmp)
    return final


def publish_derived(
    path: Path,
    write_extra: Callable[[Path], list[str]],
    update: Callable[[Manifest], Manifest],
    *,
    keep_builds: int = 2,
) -> Path:
    """Publish a new build of the index at ``path``: the current build's files (hard links, never
    modified), plus the files ``write_extra(folder)`` writes (it returns their relative paths), under the
    manifest ``update`` returns. Atomic like :func:`build_index`; the current build is kept for rollback."""
    path = Path(path)
    root, name = path.parent, path.name
    with build_lock(root, name):
        final = _derive(path, write_extra, update)
        link = publish(root, name, final)
        prune_builds(root, name, keep=keep_builds)
    return link


def _derive(path: Path, write_extra: Callable[[Path], list[str]], update: Callable[[Manifest], Manifest]) -> Path:
    real, root, name = path.resolve(), path.parent, path.name
    manifest = Manifest.read(real)
    with _staged(root, name) as (tmp, final):
        for rel in manifest.files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(real / rel, tmp / rel)
            except OSError:  # another file system, or no hard links: copy
                shutil.copy2(real / rel, tmp / rel)
        written = write_extra(tmp)
        files = {**manifest.files, **{rel: file_sha256(tmp / rel) for rel in written}}
        changes = {"build_id": _build_id(final), "built_at": datetime.now(UTC), "files": files}
        update(manifest.model_copy(update=changes)).write(tmp)
    return final


def publish(root: Path, name: str, build: Path) -> Path:
    """Point ``root/<name>`` at ``build`` in one atomic rename."""
    link = root / name
    if link.exists() and not link.is_symlink():
        # A plain folder (copied in by hand): keep it as a build beside the new one.
        link.rename(root / f"{name}@previous-{_new_build_id()}")
    tmp_link = root / f".link-{name}-{secrets.token_hex(4)}"
    os.symlink(build.name, tmp_link)
    os.replace(tmp_link, link)
    fsync_dir(root)
    return link


def rollback(root: Path, name: str) -> Path:
    """Point ``root/<name>`` back at the build before the current one; return that build."""
    current = (root / name).resolve()
    builds = sorted((p for p in root.glob(f"{name}@*") if p.is_dir()), key=lambda p: p.name)
    older = [b for b in builds if b.name < current.name]
    if not older:
        raise IndexLoadError(f"index {name!r} has no build older than {current.name} to roll back to")
    publish(root, name, older[-1])
    return older[-1]


def prune_builds(root: Path, name: str, *, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` builds of ``name`` (never the published one)."""
    current = (root / name).resolve()
    builds = sorted((p for p in root.glob(f"{name}@*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    removed = []
    for old in builds[max(keep, 1) :]:
        if old.resolve() != current:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def open_index(path: Path, *, verify: bool = True) -> LoadedIndex:
    """Open an index folder (or its published link), checking files, checksums and counts."""
    path = Path(path)
    if not path.exists():
        raise IndexLoadError(
            f"index {path} does not exist: build it with `simsearch-build-index --corpus <file> --name {path.name}`"
        )
    real = path.resolve()
    try:
        manifest = Manifest.read(real)
    except ManifestError as exc:
        raise IndexLoadError(str(exc)) from None
    for file_name, digest in manifest.files.items():
        file_path = real / file_name
        if not file_path.is_file():
            raise IndexLoadError(f"index {path}: {file_name} is missing; rebuild the index")
        if verify and file_sha256(file_path) != digest:
            raise IndexLoadError(f"index {path}: {file_name} is corrupt (its SHA-256 differs from the manifest)")
    try:
        ann = backend(manifest.index.type).load(real, manifest.model.dimension, manifest.index.params)
        store = DocStore(real / DOCS_FILE)
    except (ValueError, OSError) as exc:
        raise IndexLoadError(f"index {path}: {exc}") from None
    if not ann.count() == len(store) == manifest.count:
        store.close()
        raise IndexLoadError(
            f"index {path}: {ann.count()} vectors and {len(store)} documents, the manifest says {manifest.count}"
        )
    cur = None
    if manifest.cur is not None:
        try:
            cur = load_cur(real, manifest.cur)
        except (ValueError, OSError) as exc:
            store.close()
            raise IndexLoadError(f"index {path}: CUR arrays: {exc}") from None
    return LoadedIndex(path=real, manifest=manifest, ann=ann, store=store, cur=cur)


def check_model(index: LoadedIndex, encoder: BiEncoder) -> None:
    """Refuse to pair an index with a model other than the one that encoded it."""
    built = index.manifest.model
    if built.sha256 != encoder.sha256:
        raise IndexLoadError(
            f"index {index.name!r} was built with model {built.path} (sha256 {built.sha256[:12]}), but the "
            f"configured model is {encoder.path} (sha256 {encoder.sha256[:12]}): rebuild the index with this "
            "model or set SIMSEARCH_BI_MODEL to the one it was built with"
        )
    if built.dimension != encoder.dim:
        raise IndexLoadError(f"index {index.name!r} holds {built.dimension}-d vectors; the model makes {encoder.dim}-d")
