"""Everything the service holds in memory, loaded from settings in one call.

Start-up problems (a missing model, a missing, corrupt or mismatched index) become one
:class:`StartupError` whose message says what is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from simsearch.collection.base import Collection, CollectionSearchView
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.open import CollectionOpenError, open_collection
from simsearch.collection.write_log import LogMismatchError
from simsearch.index import IndexLoadError
from simsearch.index.open import LoadedIndex, open_index
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.loading import ModelLoadError
from simsearch.search import DirectModels, SearchPipeline
from simsearch.serving.batching import alone_lane, on_passing_thread
from simsearch.settings import Settings

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot start with these settings."""


@dataclass(frozen=True)
class Threads:
    """How the models use the cores: ``alone`` intra-op threads for a batch that has the machine to itself,
    ``shared`` for each of ``streams`` batches running at once (see simsearch.serving.batching)."""

    alone: int
    shared: int
    streams: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Threads:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        alone = settings.torch_threads or cores
        streams = settings.model_streams or (2 if alone >= 2 else 1)
        return cls(alone=alone, shared=max(1, alone // streams), streams=streams)

    def count(self, alone: bool) -> int:
        """Intra-op threads for a batch that runs alone, or as one of the streams."""
        return self.alone if alone else self.shared


@dataclass
class Runtime:
    """A loaded collection with the models that search it. A reload makes a new one; every request keeps
    the one it started with, and a replaced runtime is closed when its last request has finished
    (counted, not timed: a slow request never finds its index closed under it)."""

    settings: Settings
    encoder: BiEncoder
    collection: Collection
    pipeline: SearchPipeline
    cross: CrossScorer | None = None
    threads: Threads = Threads(alone=1, shared=1, streams=1)
    _users: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def index(self) -> LoadedIndex:
        """The embedded collection's base build (the Milvus store has none)."""
        if not isinstance(self.collection, EmbeddedCollection):
            raise TypeError(f"the {self.collection.backend} store has no index folder")
        return self.collection.index

    @property
    def name(self) -> str:
        return self.collection.name

    @property
    def build_id(self) -> str:
        return self.collection.build_id

    @property
    def view(self) -> CollectionSearchView:
        return self.collection.view()

    def direct_models(self) -> DirectModels:
        """The runtime's models called inline (jobs and benchmarks: one search at a time)."""
        return DirectModels(self.encoder, self.cross)

    @contextmanager
    def in_use(self) -> Iterator[Runtime]:
        """Hold the runtime open for the length of a request."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this runtime was closed")
            self._users += 1
        try:
            yield self
        finally:
            with self._lock:
                self._users -= 1
                last = self._retired and self._users == 0
            if last:
                self._close_now()

    def retire(self) -> None:
        """A newer runtime serves new requests: close this one as soon as no request uses it."""
        with self._lock:
            self._retired = True
            idle = self._users == 0
        if idle:
            self._close_now()

    def _close_now(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.collection.close()

    def close(self) -> None:
        self._close_now()


def load_encoder(settings: Settings) -> BiEncoder:
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    try:
        return BiEncoder.load(
            settings.bi_model,
            device=settings.device,
            batch_size=settings.encode_batch_size,
            backend=settings.backend,
            threads=Threads.from_settings(settings).alone,  # the default session is the one a lone batch uses
        )
    except ModelLoadError as exc:
        raise StartupError(f"{exc} (setting SIMSEARCH_BI_MODEL)") from None


def load_cross(settings: Settings) -> CrossScorer | None:
    if not settings.cross_model:
        return None
    try:
        return CrossScorer.load(
            settings.cross_model,
            device=settings.device,
            batch_size=settings.encode_batch_size,
            backend=settings.backend,
            threads=Threads.from_settings(settings).alone,
        )
    except ModelLoadError as exc:
        raise StartupError(f"{exc} (setting SIMSEARCH_CROSS_MODEL)") from None


def check_cross(collection: Collection, cross: CrossScorer | None) -> None:
    """Refuse CUR arrays fitted with another cross-encoder than the configured one."""
    cur = collection.index.manifest.cur if isinstance(collection, EmbeddedCollection) else collection.info.cur  # type: ignore[attr-defined]
    if cur is not None and cross is not None and cur.cross_encoder.sha256 != cross.sha256:
        fitted = cur.cross_encoder
        raise IndexLoadError(
            f"index {collection.name!r} has CUR arrays fitted with cross-encoder {fitted.path} "
            f"(sha256 {fitted.sha256[:12]}), but the configured one is {cross.path} (sha256 {cross.sha256[:12]}): "
            "set SIMSEARCH_CROSS_MODEL to the fitted one, or fit CUR again with this one"
        )


def runtime_for(
    settings: Settings,
    index: LoadedIndex | None,
    encoder: BiEncoder,
    cross: CrossScorer | None,
    threads: Threads,
    writable: bool | None = None,
) -> Runtime:
    """Open the configured collection (the embedded one over ``index``, its log replayed; or Milvus) for
    these models, refusing a mismatch. ``writable=False``: a reader that never writes (jobs; replicas)."""
    if writable is not None:
        settings = settings.model_copy(update={"read_only": not writable})
    collection = open_collection(settings, index, encoder)
    try:
        check_cross(collection, cross)
    except IndexLoadError:
        collection.close()
        raise
    measured = index.manifest.rerank if index is not None else None
    weight = measured.weight if measured and cross and measured.cross_encoder.sha256 == cross.sha256 else 1.0
    pipeline = SearchPipeline(
        query_prefix=settings.query_prefix,
        cross_query=cross.clip if cross else None,
        rerank_weight=weight,
        rerank_candidates=measured.candidates if measured else "dense",
    )
    return Runtime(settings, encoder, collection, pipeline, cross, threads)


def _open_index(settings: Settings) -> LoadedIndex | None:
    """The published build, for the embedded store (Milvus reads nothing from the index folder)."""
    return open_index(settings.index_path, verify=settings.verify_checksums) if settings.store == "embedded" else None


def open_runtime(settings: Settings, encoder: BiEncoder, cross: CrossScorer | None, threads: Threads) -> Runtime:
    """Open the newest build of the configured collection for already loaded models (every reload)."""
    index = _open_index(settings)
    try:
        return runtime_for(settings, index, encoder, cross, threads)
    except CollectionOpenError as exc:
        if index is not None:
            index.close()
        raise IndexLoadError(str(exc)) from None
    except BaseException:
        if index is not None:
            index.close()
        raise


def warm(rt: Runtime, threads: int) -> None:
    """One search's work on ``threads`` intra-op threads, on the calling thread: a query encoded, the
    index searched and its document read, and the cross-encoder's forward pass."""
    vector = rt.encoder.encode(["warm-up"], threads=threads)[0]
    rt.view.documents([key for key, _ in rt.view.dense(vector, 1)])
    if rt.cross is not None:
        rt.cross.score([("warm-up", "warm-up")], threads=threads)


def load_runtime(settings: Settings, *, writable: bool | None = None) -> Runtime:
    """Open the index first (cheap, and the likelier thing to be wrong), then the models."""
    try:
        index = _open_index(settings)
    except IndexLoadError as exc:
        raise StartupError(str(exc)) from None
    threads = Threads.from_settings(settings)

    def load() -> Runtime:
        encoder = load_encoder(settings)
        cross = load_cross(settings)
        rt = runtime_for(settings, index, encoder, cross, threads, writable)
        # the first forward pass is slow (and an ONNX session per thread count is made on first use): pay
        # it before the first request, for both ways a batch can run
        warm(rt, threads.shared)
        return rt

    try:
        rt = on_passing_thread(load)  # the torch threads a load makes must not outlive it
    except (StartupError, IndexLoadError, LogMismatchError, CollectionOpenError) as exc:
        if index is not None:
            index.close()
        raise StartupError(str(exc)) from None
    alone_lane().submit(warm, rt, threads.alone).result()  # where lone batches will run
    log.info(
        "loaded collection %s (%s store, %d documents) and model %s",
        rt.name,
        rt.collection.backend,
        rt.view.count,
        rt.encoder.path,
    )
    return rt
