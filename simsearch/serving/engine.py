"""The service's async front of the core: batched model calls, search, similarity, hot reload.

Knows asyncio but not HTTP. The bi-encoder and the cross-encoder each sit behind a
:class:`~simsearch.serving.batching.MicroBatcher`; index search and document reads run in the default
thread pool. Searches run the core's :class:`~simsearch.search.SearchPipeline` with these batched calls.
The runtime (model + index) is swapped as a whole on reload, and each request keeps the runtime it
started with, so a reload never changes an index under a running request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from simsearch.collection.compact import CompactionError, compact
from simsearch.collection.delta import WriteResult
from simsearch.collection.embedded import EmbeddedCollection
from simsearch.data.corpus import Document
from simsearch.models.similarity import distinct_texts, paired_cosines
from simsearch.search import ModeUnavailableError, SearchParams, SearchResult
from simsearch.search.models import NO_CROSS_ENCODER
from simsearch.serving.batching import MicroBatcher
from simsearch.serving.runtime import Runtime, open_runtime

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SearchOutcome:
    result: SearchResult
    runtime: Runtime


class BatchedModels:
    """The pipeline's model calls through the micro-batchers; blocking work in the thread pool."""

    def __init__(self, bi: MicroBatcher[str], cross: MicroBatcher[tuple[str, str]] | None, timeout: float) -> None:
        self.bi = bi
        self.cross = cross
        self.timeout = timeout

    @property
    def has_cross(self) -> bool:
        return self.cross is not None

    async def encode(self, texts: list[str]) -> np.ndarray:
        return await self.bi.submit(texts, self.timeout)

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if self.cross is None:
            raise ModeUnavailableError(NO_CROSS_ENCODER)
        return await self.cross.submit(pairs, self.timeout)

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def encode_then(self, texts: list[str], then: Callable[[np.ndarray], T]) -> T:
        return await self.bi.submit_then(texts, self.timeout, then)


class Engine:
    def __init__(self, runtime: Runtime) -> None:
        s = runtime.settings
        self.runtime = runtime
        encoder, cross, lanes = runtime.encoder, runtime.cross, runtime.threads

        def encode(texts: list[str], alone: bool) -> np.ndarray:
            return encoder.encode(texts, threads=lanes.count(alone))

        self.bi = MicroBatcher(
            encode,
            name="bi-encoder",
            max_batch=s.max_batch,
            max_wait_ms=s.max_wait_ms,
            max_queue=s.max_queue,
            streams=lanes.streams,
        )
        self.cross: MicroBatcher[tuple[str, str]] | None = None
        if cross is not None:

            def score(pairs: list[tuple[str, str]], alone: bool) -> np.ndarray:
                return cross.score(pairs, threads=lanes.count(alone))

            self.cross = MicroBatcher(
                score,
                name="cross-encoder",
                max_batch=s.max_batch,
                max_wait_ms=s.max_wait_ms,
                max_queue=s.max_cross_queue,
                streams=lanes.streams,
            )
        self.models = BatchedModels(self.bi, self.cross, s.request_timeout_s)
        self._reload_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()  # writes, and the swap to a new build, one at a time
        self._tasks: set[asyncio.Task[None]] = set()
        self.compacting = False
        self.last_compaction: dict[str, Any] | None = None

    def start(self) -> None:
        """Background work: picking up other processes' writes (every ``refresh_s``)."""
        self._spawn(self._follow_log(), "follow-log")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.bi.stop()
        if self.cross is not None:
            await self.cross.stop()

    @contextlib.contextmanager
    def _runtime(self) -> Iterator[Runtime]:
        """The current runtime, held open until the request is done (a reload may retire it meanwhile)."""
        rt = self.runtime
        with rt.in_use():
            yield rt

    async def search(self, query: str, params: SearchParams) -> SearchOutcome:
        with self._runtime() as rt:  # fixed for this request, even if a reload happens meanwhile
            return SearchOutcome(await rt.pipeline.search(rt.view, self.models, query, params), rt)

    # -- documents -------------------------------------------------------------------------------------
    async def upsert(self, docs: Sequence[Document]) -> WriteResult:
        """Encode and write one all-or-nothing batch; durable and visible to searches when this returns."""
        with self._runtime() as rt:
            prefix = rt.collection.model.document_prefix
            vectors = await self.models.encode([prefix + d.content() for d in docs])
        async with self._write_lock:
            with self._runtime() as rt:  # the runtime current now: a compaction may have swapped it
                result = await asyncio.to_thread(rt.collection.upsert, docs, vectors)
        self._maybe_compact()
        return result

    async def delete(self, ids: Sequence[str]) -> WriteResult:
        async with self._write_lock:
            with self._runtime() as rt:
                result = await asyncio.to_thread(rt.collection.delete, ids)
        self._maybe_compact()
        return result

    async def get(self, doc_id: str) -> Document | None:
        with self._runtime() as rt:
            return await asyncio.to_thread(rt.view.get, doc_id)

    async def _follow_log(self) -> None:
        """Pick up other processes' write batches; a read-only replica also swaps to the build the writer
        published (after a compaction), since its own build will be pruned."""
        while True:
            await asyncio.sleep(self.runtime.settings.refresh_s)
            try:
                rt = self.runtime
                embedded = isinstance(rt.collection, EmbeddedCollection)
                if embedded and rt.settings.read_only and rt.settings.index_path.resolve() != rt.index.path:
                    await self.reload()
                    continue
                async with self._write_lock:
                    with self._runtime() as rt:
                        await asyncio.to_thread(rt.collection.refresh)
            except Exception:  # a failed look at the log must not end the loop
                log.exception("following the writer failed; trying again")

    # -- compaction ------------------------------------------------------------------------------------
    def _maybe_compact(self) -> None:
        rt = self.runtime
        limit = rt.settings.compact_after
        if limit and not self.compacting and rt.collection.uncompacted() >= limit:
            self._spawn(self.compact(), "compaction")

    async def compact(self) -> dict[str, Any]:
        """Fold the writes into a new build (in a thread: searches and writes go on), then swap to it."""
        if self.compacting:
            raise CompactionError("a compaction is already running")
        if not isinstance(self.runtime.collection, EmbeddedCollection):
            raise CompactionError(f"the {self.runtime.collection.backend} store merges its segments itself")
        self.compacting = True
        started = time.perf_counter()
        try:
            with self._runtime() as rt:
                cross = rt.cross
                assert isinstance(rt.collection, EmbeddedCollection)
                link = await asyncio.to_thread(
                    compact,
                    rt.collection,
                    cross_score=cross.score if cross is not None else None,
                    cross_sha256=cross.sha256 if cross is not None else None,
                )
            before = rt.build_id
            new = await self.reload() if link is not None else self.runtime
            self.last_compaction = {
                "previous_build_id": before,
                "build_id": new.build_id,
                "sequence": new.collection.sequence,
                "seconds": round(time.perf_counter() - started, 3),
            }
            log.info("compacted %s: %s", new.name, self.last_compaction)
            return self.last_compaction
        except Exception:
            log.exception("compaction failed; the current build keeps serving")
            raise
        finally:
            self.compacting = False

    async def similarity(self, pairs: Sequence[tuple[str, str]], model: str) -> np.ndarray:
        if model == "cross":
            return await self.models.score(list(pairs))
        texts, rows_a, rows_b = distinct_texts(pairs)
        return paired_cosines(await self.models.encode(texts), rows_a, rows_b)

    async def reload(self) -> Runtime:
        """Open the newest build of the configured index and swap it in; a broken build raises
        ``IndexLoadError`` and the current one keeps serving."""
        async with self._reload_lock:
            old = self.runtime
            new = await asyncio.to_thread(open_runtime, old.settings, old.encoder, old.cross, old.threads)
            async with self._write_lock:  # writes that landed while the new build opened are caught up first
                try:
                    await asyncio.to_thread(new.collection.refresh)
                except BaseException:
                    new.close()
                    raise
                self.runtime = new
            old.retire()  # requests that started on the old build finish on it; the last one closes it
            log.info(
                "reloaded index %s: build %s -> %s",
                new.name,
                old.build_id,
                new.build_id,
            )
            return new
