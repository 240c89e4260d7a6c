"""Opening an index folder safely: every file present, every checksum right, counts that agree, and the
model that built it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsearch.ann import AnnIndex, backend
from simsearch.index import IndexLoadError, layout
from simsearch.index.cur_arrays import CurArrays, load_cur
from simsearch.index.docstore import DocStore
from simsearch.index.manifest import Manifest, ManifestError
from simsearch.index.publish import Lease
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.files import file_sha256


@dataclass
class LoadedIndex:
    path: Path  # the real build folder (the symlink resolved once, so every file comes from one build)
    manifest: Manifest
    ann: AnnIndex
    store: DocStore
    cur: CurArrays | None = None
    lease: Lease | None = None  # while open, pruning never deletes this build
    passages: np.ndarray | None = None  # (n vectors, 3): each vector's document position, start, end; None: 1:1

    @property
    def vectors(self) -> int:
        """Rows of the vector index: passages, or documents when none was split."""
        return len(self.passages) if self.passages is not None else self.manifest.count

    @property
    def name(self) -> str:
        return self.manifest.name

    def close(self) -> None:
        self.store.close()
        if self.lease is not None:
            self.lease.release()


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
        store = DocStore(real / layout.DOCS_FILE)
    except (ValueError, OSError) as exc:
        raise IndexLoadError(f"index {path}: {exc}") from None
    passages = None
    if layout.PASSAGES_FILE in manifest.files:
        passages = np.load(real / layout.PASSAGES_FILE, mmap_mode="r", allow_pickle=False)
    vectors = len(passages) if passages is not None else manifest.count
    if not (ann.count() == vectors and len(store) == manifest.count):
        store.close()
        raise IndexLoadError(
            f"index {path}: {ann.count()} vectors and {len(store)} documents, the manifest says {manifest.count} "
            f"documents in {vectors} vectors"
        )
    cur = None
    if manifest.cur is not None:
        try:
            cur = load_cur(real, manifest.cur)
        except (ValueError, OSError) as exc:
            store.close()
            raise IndexLoadError(f"index {path}: CUR arrays: {exc}") from None
        columns = vectors if manifest.cur.items == "passages" else manifest.count
        if cur.ann.count() != columns:
            store.close()
            raise IndexLoadError(f"index {path}: CUR arrays cover {cur.ann.count()} of {columns} {manifest.cur.items}")
    return LoadedIndex(
        path=real, manifest=manifest, ann=ann, store=store, cur=cur, lease=Lease(real), passages=passages
    )


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
