"""The service's async front of the core: many collections, one shared pool of models.

Knows asyncio but not HTTP. Collections are resources: :meth:`Engine.create` makes an empty one from a
specification, :meth:`Engine.drop` removes one (requests in flight finish on it, later ones are told it
is gone, and its files are deleted once the last request reading them is done), and the background loop
picks up what other processes did (writes appended to a log, builds published by ``training.build_index``,
collections that appeared in or vanished from the store). Each collection is a
:class:`~simsearch.serving.collection.CollectionEngine`; models are shared through
:class:`~simsearch.serving.pool.ModelPool`, one batcher per model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from simsearch.api.spec import COLLECTION_NAME, CollectionSpec
from simsearch.collection.manager import CollectionExistsError, CollectionNotFoundError, Store
from simsearch.index import IndexLoadError
from simsearch.index.build import model_info
from simsearch.models.loading import SPECIAL_TOKENS_MARGIN
from simsearch.models.registry import CROSS, DEFAULT, LoadedModel, ModelRegistry, UnknownModelError
from simsearch.models.similarity import distinct_texts, paired_cosines
from simsearch.serving.collection import CollectionEngine
from simsearch.serving.pool import BatchObserver, ModelPool
from simsearch.serving.runtime import Runtime, StartupError, Threads, open_runtime
from simsearch.settings import Settings

log = logging.getLogger(__name__)
SPECIAL_TOKENS = SPECIAL_TOKENS_MARGIN // 2  # [CLS] and [SEP] around one text
DISCOVER_EVERY = 5  # refresh rounds between looks for collections other processes made or removed


class SpecError(ValueError):
    """A specification that cannot be created here; ``field`` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SpecConflictError(RuntimeError):
    """A create of an existing collection with another specification (or beyond the limit)."""

    def __init__(self, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.fields = list(fields)


def check_passages(spec: CollectionSpec, bi: LoadedModel) -> None:
    """Passages must fit the model's window with its special tokens and its document prefix, and overlap
    less than a passage (refused naming the field, before anything is created)."""
    if isinstance(spec.passages, str):
        return
    window = int(bi.model.max_seq_length)
    room = window - SPECIAL_TOKENS - len(bi.model.model.tokenizer.tokenize(bi.entry.document_prefix))
    if spec.passages.tokens > room:
        raise SpecError(
            "passages.tokens",
            f"{spec.passages.tokens} tokens do not fit model {spec.model!r}: its window is {window} tokens, "
            f"{room} once its special tokens and document prefix are in",
        )
    if spec.passages.overlap >= spec.passages.tokens:
        raise SpecError("passages.overlap", f"{spec.passages.overlap} tokens of overlap: it must be less than tokens")


def _busy(collections: list[tuple[str, CollectionEngine]]) -> set[str]:
    """The collections other processes may have written to (or, for a replica, published a build of)."""
    out = set()
    for name, engine in collections:
        rt = engine.runtime
        if rt.collection.pending() or (not rt.settings.writable and rt.collection.stale()):
            out.add(name)
    return out


class Engine:
    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        store: Store,
        threads: Threads,
        *,
        observer: Callable[[str], BatchObserver] | None = None,
        on_reload: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.store = store
        self.threads = threads
        self.pool = ModelPool(settings, registry, threads, observer)
        self.collections: dict[str, CollectionEngine] = {}
        self.failed: dict[str, str] = {}  # collections present in the store that could not be opened: why
        self.on_reload = on_reload
        self._create_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def around(cls, runtime: Runtime, **hooks: Any) -> Engine:
        """An engine whose default collection is ``runtime`` (already open, with its models), with the
        other collections of its store; for benchmarks and tests that open the runtime themselves."""
        from simsearch.serving.runtime import registry_for, store_for

        settings = runtime.settings
        registry = registry_for(settings, runtime.threads)
        for loaded in (runtime.bi, runtime.cross_model):
            if loaded is not None:
                registry.adopt(loaded)
        engine = cls(settings, registry, await asyncio.to_thread(store_for, settings), runtime.threads, **hooks)
        await engine.open_all(runtime)
        return engine

    # -- opening -------------------------------------------------------------------------------------------
    def _open(self, name: str) -> Runtime:
        return open_runtime(self.settings, self.registry, self.store, name, self.threads)

    def _engine_for(self, rt: Runtime) -> CollectionEngine:
        models = self.pool.models_for(rt.bi, rt.cross_model, rt.name)
        engine = CollectionEngine(rt, models, lambda: self._open(rt.name))
        if self.on_reload is not None:
            hook = self.on_reload
            engine.on_reload = lambda outcome: hook(rt.name, outcome)
        return engine

    async def open_all(self, default: Runtime | None = None) -> None:
        """Open every collection of the store. The default collection must open (else :class:`StartupError`);
        another that cannot is listed with the reason and the service goes on without it."""
        await asyncio.to_thread(self.store.recover)
        names = await asyncio.to_thread(self.store.names)
        wanted = self.settings.index_name
        if default is not None:
            await self._add(default)
        elif wanted is not None:
            if wanted not in names:
                raise StartupError(
                    f"collection {wanted!r} does not exist in {self._where()}: build it with `simsearch-build-index "
                    f"--corpus <file> --name {wanted}`, create it over the API, or set SIMSEARCH_INDEX_NAME= (empty) "
                    "to start without a default collection"
                )
            try:
                await self._add(await asyncio.to_thread(self._open, wanted))
            except (IndexLoadError, UnknownModelError) as exc:
                raise StartupError(str(exc)) from None
        for name in names:
            if name not in self.collections:
                await self._try_open(name)

    def _where(self) -> str:
        return str(self.settings.index_dir) if self.store.backend == "embedded" else "Milvus"

    async def _try_open(self, name: str) -> None:
        try:
            await self._add(await asyncio.to_thread(self._open, name))
            self.failed.pop(name, None)
        except (IndexLoadError, StartupError, UnknownModelError, OSError, ValueError) as exc:
            if self.failed.get(name) != str(exc):
                log.error("collection %s cannot be opened, serving the others: %s", name, exc)
            self.failed[name] = str(exc)

    async def _add(self, rt: Runtime) -> CollectionEngine:
        engine = self._engine_for(rt)
        await engine.recount()
        self.collections[rt.name] = engine
        return engine

    # -- the collections -------------------------------------------------------------------------------------
    def get(self, name: str | None) -> CollectionEngine:
        """The collection ``name`` (``None``: the default one), or :class:`CollectionNotFoundError`."""
        if name is None:
            if self.settings.index_name is None:
                raise CollectionNotFoundError(
                    "this service has no default collection (SIMSEARCH_INDEX_NAME is empty): use "
                    "/collections/{name}/..."
                )
            name = self.settings.index_name
        found = self.collections.get(name)
        if found is None:
            reason = self.failed.get(name)
            raise CollectionNotFoundError(
                f"collection {name!r} cannot be opened: {reason}" if reason else f"no collection named {name!r}"
            )
        return found

    def names(self) -> list[str]:
        return sorted({*self.collections, *self.failed})

    async def create(self, name: str, spec: CollectionSpec) -> tuple[CollectionEngine, bool]:
        """Create an empty collection, or find the same one: ``(engine, created)``. A name taken with another
        specification is a :class:`SpecConflictError` naming the differing fields."""
        if not re.fullmatch(COLLECTION_NAME, name):
            raise SpecError("name", "a collection name is 1-64 ASCII letters, digits, '-' or '_'")
        for field, kind in (("model", "bi"), ("cross", "cross")):
            value = getattr(spec, field)
            if value is not None:
                try:
                    self.registry.entry(value, kind)  # type: ignore[arg-type]
                except UnknownModelError as exc:
                    raise SpecError(field, str(exc)) from None
        if self.store.backend == "milvus" and spec.index == "hnsw" and "://" not in self.settings.milvus_uri:
            raise SpecError("index", "milvus-lite builds flat and ivf indexes only: use one of those")
        async with self._create_lock:
            existing = self.collections.get(name)
            if existing is not None:
                differ = spec.differences(existing.runtime.spec)
                if differ:
                    held = existing.runtime.spec.model_dump(mode="json")
                    shown = ", ".join(f"{f} (it has {held[f]!r})" for f in differ)
                    raise SpecConflictError(f"collection {name!r} exists with another {shown}", differ)
                return existing, False
            if name in self.failed:
                raise SpecConflictError(f"collection {name!r} exists but cannot be opened: {self.failed[name]}")
            if len(self.names()) >= self.settings.max_collections:
                raise SpecConflictError(
                    f"this service holds {len(self.names())} collections, its limit (SIMSEARCH_MAX_COLLECTIONS="
                    f"{self.settings.max_collections}): delete one first"
                )
            bi = await self.pool.load(spec.model, "bi")
            if spec.cross is not None:
                await self.pool.load(spec.cross, "cross")
            check_passages(spec, bi)
            info = model_info(bi.model, bi.entry.document_prefix, bi.name)
            try:
                await asyncio.to_thread(self.store.create, name, spec, info)
            except CollectionExistsError:  # made meanwhile by another process: take it if it is the same
                await self._try_open(name)
                found = self.collections.get(name)
                if found is None or spec.differences(found.runtime.spec):
                    raise SpecConflictError(f"collection {name!r} exists with another specification") from None
                return found, False
            engine = await self._add(await asyncio.to_thread(self._open, name))
            log.info("created collection %s: %s", name, spec.model_dump(mode="json"))
            return engine, True

    async def drop(self, name: str) -> None:
        """Remove a collection: gone for new requests at once, its files deleted after the last request on it."""
        async with self._create_lock:
            engine = self.get(name)
            if name == self.settings.index_name:  # the routes of the first API would all become 404s
                raise SpecConflictError(
                    f"collection {name!r} is the default collection (SIMSEARCH_INDEX_NAME): it cannot be deleted "
                    "while it is the default"
                )
            del self.collections[name]
            try:
                finish = await asyncio.to_thread(self.store.remove, name)
            except BaseException:
                self.collections[name] = engine
                raise

            def in_background() -> None:  # the last request may end on the event loop: never delete there
                threading.Thread(target=finish, name=f"remove-{name}", daemon=False).start()

            engine.retire(in_background)
            log.info("removed collection %s", name)

    async def discover(self) -> None:
        """Open collections other processes made; forget those they removed."""
        present = set(await asyncio.to_thread(self.store.names))
        for name in sorted(present - set(self.collections)):
            await self._try_open(name)
        async with self._create_lock:
            for name in sorted(set(self.collections) - present):
                log.warning("collection %s was removed by another process", name)
                self.collections.pop(name).retire()
            for name in sorted(set(self.failed) - present):
                self.failed.pop(name)

    async def reload_all(self) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
        """Swap every collection to its newest build and pick up new ones: ``(name, before, after)`` of each
        swapped, and why each refused build was refused (that collection keeps serving its current one)."""
        done, refused = [], {}
        for name, engine in list(self.collections.items()):
            before = engine.runtime.build_id
            try:
                rt = await engine.reload()
            except (IndexLoadError, StartupError, OSError, ValueError) as exc:
                refused[name] = str(exc)
                if self.on_reload is not None:
                    self.on_reload(name, "refused")
                continue
            done.append((name, before, rt.build_id))
        await self.discover()
        return done, refused

    # -- similarity ----------------------------------------------------------------------------------------------
    def similarity_model(self, name: str) -> tuple[str, str]:
        """``(registry name, kind)`` of a similarity request's ``model``: ``bi`` and ``cross`` mean the default
        ones, any other is a registry name; :class:`UnknownModelError` otherwise."""
        alias = {"bi": DEFAULT, "cross": CROSS}.get(name, name)
        entry = self.registry.entries.get(alias)
        if entry is None:
            raise UnknownModelError(
                f"no model named {name!r} is configured (known: {', '.join(self._similarity_names())})"
            )
        return alias, entry.kind

    def _similarity_names(self) -> list[str]:
        aliases = ["bi", *(["cross"] if CROSS in self.registry.entries else [])]
        return aliases + self.registry.names()

    async def similarity(self, pairs: Sequence[tuple[str, str]], model: str) -> np.ndarray:
        name, kind = self.similarity_model(model)
        loaded = await self.pool.load(name, kind)
        batcher = self.pool.batcher(loaded)
        timeout = self.settings.request_timeout_s
        if kind == "cross":
            return await batcher.submit(list(pairs), timeout)
        texts, rows_a, rows_b = distinct_texts(pairs)
        return paired_cosines(await batcher.submit(texts, timeout), rows_a, rows_b)

    def truncated_pairs(self, pairs: list[tuple[str, str]], model: str) -> list[int]:
        """Positions of the pairs a model cuts (blocking: tokenises long texts)."""
        name, kind = self.similarity_model(model)
        loaded = self.registry.get(name, kind)  # type: ignore[arg-type]
        if kind == "cross":
            return [i for i, cut in enumerate(loaded.model.truncated(pairs)) if cut]
        cut: list[Any] = loaded.model.truncated([t for p in pairs for t in p])
        return [i for i in range(len(pairs)) if cut[2 * i] or cut[2 * i + 1]]

    # -- background work -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn(self._follow(), "follow")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow(self) -> None:
        """Every ``refresh_s``: other processes' writes, compactions due, and (less often) collections that
        appeared or vanished."""
        rounds = 0
        while True:
            await asyncio.sleep(self.settings.refresh_s)
            rounds += 1
            collections = list(self.collections.items())
            try:  # one trip to the thread pool for the cheap look at every collection
                busy = await asyncio.to_thread(_busy, collections)
            except Exception:
                log.exception("looking at the collections' logs failed; trying again")
                continue
            for name, engine in collections:
                if name not in busy and not engine.wants_compaction():
                    continue
                try:
                    await engine.refresh()
                    if self.settings.writable and engine.wants_compaction():
                        self._spawn(self._compact(engine), f"compact-{name}")
                except Exception:  # a failed look must not end the loop
                    log.exception("following collection %s failed; trying again", name)
            if rounds % DISCOVER_EVERY == 0:
                try:
                    await self.discover()
                except Exception:
                    log.exception("looking for new collections failed; trying again")

    async def _compact(self, engine: CollectionEngine) -> None:
        with contextlib.suppress(Exception):  # logged by the engine; the current build keeps serving
            await engine.compact()

    def after_write(self, engine: CollectionEngine) -> None:
        """Start a compaction in the background when the collection has enough uncompacted writes."""
        if engine.wants_compaction():
            self._spawn(self._compact(engine), f"compact-{engine.name}")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pool.stop()
        for engine in self.collections.values():
            engine.runtime.close()
