"""A collection opened with its models, ready to search: what the service holds per collection, and what
the offline jobs open (``load_runtime``: the default collection, as the service would).

The models come from the registry (simsearch.models.registry) by the names in the collection's
specification; the pairing is checked when the collection opens: the bi-encoder must hash to the weights
the collection was written with and carry the same document prefix, and CUR arrays must have been fitted
with the named cross-encoder. Start-up problems become one :class:`StartupError` whose message says what
is wrong and how to fix it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simsearch.api.spec import CollectionSpec
from simsearch.collection.base import Collection, CollectionSearchView
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.collection.manager import EmbeddedStore, MilvusStore, Store
from simsearch.collection.open import CollectionOpenError, connect, milvus_collection_name, milvus_token, public_uri
from simsearch.collection.write_log import LogMismatchError
from simsearch.index import IndexLoadError
from simsearch.index.build import splitter_for
from simsearch.index.manifest import ModelInfo
from simsearch.index.open import LoadedIndex
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.files import display_name, model_hash
from simsearch.models.loading import ModelLoadError, is_local
from simsearch.models.registry import (
    CROSS,
    DEFAULT,
    LoadedModel,
    ModelEntry,
    ModelRegistry,
    entries_from,
    setting_of,
)
from simsearch.search import DirectModels, Fusion, SearchPipeline
from simsearch.serving.batching import alone_lane, on_passing_thread
from simsearch.settings import Settings
from simsearch.text.passages import PassageSplitter

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
    """One collection with the models that search it. A reload makes a new one; every request keeps the
    one it started with, and a replaced runtime is closed when its last request has finished (counted, not
    timed: a slow request never finds its index closed under it). ``on_closed`` runs after the close (a
    removed collection's files are deleted then)."""

    settings: Settings
    spec: CollectionSpec
    bi: LoadedModel
    collection: Collection
    pipeline: SearchPipeline
    cross_model: LoadedModel | None = None
    threads: Threads = Threads(alone=1, shared=1, streams=1)
    on_closed: Callable[[], None] | None = None
    _splitter: PassageSplitter | None = field(default=None, repr=False)
    _users: int = field(default=0, repr=False)
    _retired: bool = field(default=False, repr=False)
    _closed: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def encoder(self) -> BiEncoder:
        return self.bi.model

    @property
    def splitter(self) -> PassageSplitter:
        """How this collection turns documents into passages (one each when its specification says none)."""
        found = self._splitter
        if found is None:
            found = self._splitter = splitter_for(self.encoder, self.spec, self.bi.entry.document_prefix)
        return found

    @property
    def cross(self) -> CrossScorer | None:
        return self.cross_model.model if self.cross_model is not None else None

    @property
    def index(self) -> LoadedIndex:
        """The embedded collection's base build (jobs that read the build's files; Milvus has none)."""
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

    def retire(self, on_closed: Callable[[], None] | None = None) -> None:
        """A newer runtime serves new requests (or none: the collection was removed): close this one as soon
        as no request uses it, then run ``on_closed``."""
        with self._lock:
            self._retired = True
            if on_closed is not None:
                self.on_closed = on_closed
            idle = self._users == 0
        if idle:
            self._close_now()

    def _close_now(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.collection.close()
        finally:
            if self.on_closed is not None:
                self.on_closed()

    def close(self) -> None:
        self._close_now()


# -- models -----------------------------------------------------------------------------------------------


def model_loader(settings: Settings, threads: Threads) -> Callable[[str, ModelEntry], Any]:
    """How the registry loads one entry: on a thread that ends afterwards (its torch threads go with it),
    warmed up there and on the alone lane, so the first request pays no first forward pass."""

    def load(name: str, entry: ModelEntry) -> Any:
        backend = entry.backend or settings.backend
        kwargs = {"device": settings.device, "batch_size": settings.encode_batch_size, "backend": backend}

        def load_and_warm() -> Any:
            if settings.torch_threads:
                import torch

                torch.set_num_threads(settings.torch_threads)
            if entry.kind == "cross":
                model: Any = CrossScorer.load(entry.path, threads=threads.alone, **kwargs)  # type: ignore[arg-type]
            else:
                model = BiEncoder.load(entry.path, threads=threads.alone, **kwargs)  # type: ignore[arg-type]
            _warm(model, threads.shared)
            return model

        try:
            model = on_passing_thread(load_and_warm)
        except ModelLoadError as exc:
            raise StartupError(f"{exc} (setting {setting_of(name)})") from None
        alone_lane().submit(_warm, model, threads.alone).result()  # where lone batches will run
        return model

    return load


def _warm(model: Any, threads: int) -> None:
    """The first forward pass is slow (and an ONNX session per thread count is made on first use)."""
    if isinstance(model, CrossScorer):
        model.score([("warm-up", "warm-up")], threads=threads)
    else:
        model.encode(["warm-up"], threads=threads)


def registry_for(settings: Settings, threads: Threads | None = None) -> ModelRegistry:
    entries = entries_from(settings.models, settings.bi_model, settings.cross_model)
    return ModelRegistry(entries, model_loader(settings, threads or Threads.from_settings(settings)))


def load_encoder(settings: Settings, name: str = DEFAULT) -> BiEncoder:
    """The bi-encoder a job uses: the registry's ``name`` (``default``: SIMSEARCH_BI_MODEL)."""
    try:
        return registry_for(settings).bi(name).model
    except KeyError as exc:
        raise StartupError(str(exc)) from None


def job_entry(
    settings: Settings, model: str | None = None, *, document_prefix: str | None = None
) -> tuple[str, ModelRegistry]:
    """The bi-encoder a job encodes with, not loaded: ``model`` as a registry name (``None``: ``default``),
    or a folder given on the command line (added to the registry under its path, with ``document_prefix``).
    Returns its name and the registry that holds it."""
    registry = registry_for(settings)
    name = model or DEFAULT
    if name not in registry.entries:
        entry = ModelEntry(path=name, document_prefix=document_prefix or "")
        registry = ModelRegistry(
            {**registry.entries, name: entry}, model_loader(settings, Threads.from_settings(settings))
        )
    elif document_prefix is not None and registry.entries[name].document_prefix != document_prefix:
        raise StartupError(
            f"model {name!r} has document prefix {registry.entries[name].document_prefix!r} in the registry; "
            "a prefix is part of a model's entry (SIMSEARCH_MODELS), not of a build"
        )
    if registry.entries[name].kind != "bi":
        raise StartupError(f"model {name!r} is a cross-encoder; a build needs a bi-encoder")
    return name, registry


def job_model(settings: Settings, model: str | None = None, *, document_prefix: str | None = None) -> LoadedModel:
    """:func:`job_entry`, loaded."""
    name, registry = job_entry(settings, model, document_prefix=document_prefix)
    return registry.bi(name)


def registered_name(settings: Settings, path: str) -> str | None:
    """The registry name of a bi-encoder folder, if one entry points at it."""
    target = Path(path).resolve() if Path(path).exists() else None
    for name, entry in sorted(registry_for(settings).entries.items()):
        if entry.kind == "bi" and (entry.path == path or (target and Path(entry.path).resolve() == target)):
            return name
    return None


def load_cross(settings: Settings) -> CrossScorer | None:
    if not settings.cross_model:
        return None
    return registry_for(settings).cross(CROSS).model


# -- collections ------------------------------------------------------------------------------------------


def store_for(settings: Settings) -> Store:
    """The configured store: the embedded one under ``index_dir``, or Milvus at ``milvus_uri``."""
    if settings.store == "embedded":
        return EmbeddedStore(settings.index_dir, verify=settings.verify_checksums)
    client = connect(settings.milvus_uri, milvus_token(settings))
    fixed = {settings.index_name: milvus_collection_name(settings)} if settings.index_name else {}
    return MilvusStore(client, public_uri(settings.milvus_uri), fixed=fixed)


def policy_of(requested: str | None) -> str:
    """A build's requested index type as a specification's policy (builds made before specifications)."""
    low = (requested or "auto").lower()
    return next((p for p in ("flat", "hnsw", "ivf") if low.startswith(p)), "auto")


def resolve_spec(collection: Collection, registry: ModelRegistry, *, default_collection: bool) -> CollectionSpec:
    """The collection's specification; for one made before specifications were recorded, what it holds:
    the registry model with its weights' hash (``default`` first) and, for the default collection, the
    configured cross-encoder, as before."""
    cross_default = CROSS if default_collection and CROSS in registry.entries else None
    for name in (DEFAULT, built_name := collection.model.name):
        if name in registry.entries:
            require_folder(registry, name)
    del built_name
    if collection.spec is not None:
        if collection.spec.cross is None and cross_default is not None:  # SIMSEARCH_CROSS_MODEL, as before
            return collection.spec.model_copy(update={"cross": cross_default})
        return collection.spec
    built = collection.model
    name = registry.find(built.sha256, "bi", prefer=built.name or DEFAULT)
    if name is None:
        raise IndexLoadError(
            f"collection {collection.name!r} was built with model {display_name(built.path)} (sha256 "
            f"{built.sha256[:12]}), which no registered model matches: rebuild the index with a registered model, "
            "or register that one (SIMSEARCH_BI_MODEL, SIMSEARCH_MODELS)"
        )
    requested = getattr(getattr(collection, "index", None), "manifest", None)
    policy = policy_of(requested.index.requested if requested is not None else None)
    # made before specifications: one vector per document, as it was built
    return CollectionSpec(model=name, cross=cross_default, index=policy, passages="none")  # type: ignore[arg-type]


def require_folder(registry: ModelRegistry, name: str) -> None:
    """A registered model whose folder is missing fails here, naming the setting, before any hash is compared."""
    entry = registry.entries[name]
    try:
        is_local(entry.path, "cross-encoder" if entry.kind == "cross" else "model")
    except ModelLoadError as exc:
        raise StartupError(f"{exc} (setting {setting_of(name)})") from None


def check_models(collection: Collection, spec: CollectionSpec, registry: ModelRegistry) -> None:
    """Refuse a pairing that would search wrongly: other weights, another document prefix, CUR arrays of
    another cross-encoder. Hashes only: no model is loaded for the check."""
    built: ModelInfo = collection.model
    entry = registry.entry(spec.model)
    require_folder(registry, spec.model)
    if spec.cross is not None:
        registry.entry(spec.cross, "cross")
        require_folder(registry, spec.cross)
    digest = model_hash(entry.path)
    if digest != built.sha256:
        raise IndexLoadError(
            f"collection {collection.name!r} was built with model {spec.model!r} of sha256 {built.sha256[:12]} "
            f"({display_name(built.path)}), but the registry's {spec.model!r} is {display_name(entry.path)} "
            f"(sha256 {digest[:12]}): point {spec.model!r} at the model it was built with (SIMSEARCH_MODELS), "
            "or rebuild the collection"
        )
    if entry.document_prefix != built.document_prefix:
        raise IndexLoadError(
            f"collection {collection.name!r} was written with document prefix {built.document_prefix!r}, but "
            f"model {spec.model!r} has {entry.document_prefix!r} (SIMSEARCH_MODELS): queries and documents "
            "must get their model's prefixes"
        )
    cur = collection.cur_info
    if cur is not None and spec.cross is not None:
        fitted = cur.cross_encoder
        cross_entry = registry.entry(spec.cross, "cross")
        if model_hash(cross_entry.path) != fitted.sha256:
            raise IndexLoadError(
                f"collection {collection.name!r} has CUR arrays fitted with cross-encoder "
                f"{display_name(fitted.path)} (sha256 {fitted.sha256[:12]}), but {spec.cross!r} is "
                f"{display_name(cross_entry.path)}: set {setting_of(spec.cross)} to the fitted one, or fit CUR again "
                "with this one"
            )


def runtime_for(
    settings: Settings,
    registry: ModelRegistry,
    collection: Collection,
    threads: Threads,
    *,
    default_collection: bool = False,
) -> Runtime:
    """Pair an opened collection with its models (loaded on first use), refusing a mismatch; the caller
    closes ``collection`` if this raises."""
    spec = resolve_spec(collection, registry, default_collection=default_collection)
    check_models(collection, spec, registry)
    bi = registry.bi(spec.model)
    if bi.model.dim != collection.model.dimension:
        raise IndexLoadError(
            f"collection {collection.name!r} holds {collection.model.dimension}-d vectors; model {spec.model!r} "
            f"makes {bi.model.dim}-d"
        )
    cross = registry.cross(spec.cross) if spec.cross is not None else None
    measured = collection.rerank
    weight = measured.weight if measured and cross and measured.cross_encoder.sha256 == cross.sha256 else 1.0
    clip = cross.model.clip if cross is not None else None
    fixed = spec.fusion if not isinstance(spec.fusion, str) else None
    pipeline = SearchPipeline(
        query_prefix=bi.entry.query_prefix,
        cross_query=clip,
        rerank_weight=weight,
        rerank_candidates=measured.candidates if measured else "dense",
        fusion=Fusion(fixed.method, fixed.alpha, fixed.rrf_k) if fixed is not None else None,
    )
    return Runtime(settings, spec, bi, collection, pipeline, cross, threads)


def open_runtime(
    settings: Settings,
    registry: ModelRegistry,
    store: Store,
    name: str,
    threads: Threads,
    *,
    writable: bool | None = None,
) -> Runtime:
    """Open collection ``name`` of ``store`` with its models; a broken or mismatched one raises
    :class:`IndexLoadError` (or :class:`StartupError` for a model that cannot load) and leaves nothing open."""
    write = settings.writable if writable is None else writable
    try:
        collection = store.open(name, writable=write)
    except (CollectionOpenError, LogMismatchError) as exc:
        raise IndexLoadError(str(exc)) from None
    except LookupError as exc:
        raise IndexLoadError(str(exc)) from None
    try:
        return runtime_for(settings, registry, collection, threads, default_collection=name == settings.index_name)
    except KeyError as exc:  # a model the specification names is not registered
        collection.close()
        raise IndexLoadError(f"collection {name!r}: {exc}") from None
    except BaseException:
        collection.close()
        raise


def load_runtime(settings: Settings, *, writable: bool | None = None, name: str | None = None) -> Runtime:
    """Open the default collection (or ``name``) with its models, as the service does; for the jobs."""
    threads = Threads.from_settings(settings)
    target = name or settings.index_name
    if target is None:
        raise StartupError("no collection named: set SIMSEARCH_INDEX_NAME (or --name)")
    try:
        store = store_for(settings)
        if settings.store == "embedded" and not (settings.index_dir / target).exists():
            from simsearch.index.open import open_index

            open_index(settings.index_dir / target)  # raises the message that says how to build it
        rt = open_runtime(settings, registry_for(settings, threads), store, target, threads, writable=writable)
    except (IndexLoadError, CollectionOpenError, LogMismatchError) as exc:
        raise StartupError(str(exc)) from None
    log.info(
        "loaded collection %s (%s store, %d documents) and model %s",
        rt.name,
        rt.collection.backend,
        rt.view.count,
        display_name(rt.encoder.path),
    )
    return rt
