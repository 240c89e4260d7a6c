"""The service's async front of the core: batched model calls, search, similarity, hot reload.

Knows asyncio but not HTTP. The bi-encoder and the cross-encoder each sit behind a
:class:`~simsearch.serving.batching.MicroBatcher`; index search and document reads run in the default
thread pool. Searches run the core's :class:`~simsearch.search.SearchPipeline` with these batched calls.
The runtime (model + index) is swapped as a whole on reload, and each request keeps the runtime it
started with, so a reload never changes an index under a running request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

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
                max_queue=s.max_queue * 8,
                streams=lanes.streams,
            )
        self.models = BatchedModels(self.bi, self.cross, s.request_timeout_s)
        self._reload_lock = asyncio.Lock()

    async def stop(self) -> None:
        await self.bi.stop()
        if self.cross is not None:
            await self.cross.stop()

    async def search(self, query: str, params: SearchParams) -> SearchOutcome:
        rt = self.runtime  # fixed for this request, even if a reload happens meanwhile
        return SearchOutcome(await rt.pipeline.search(rt.view, self.models, query, params), rt)

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
            self.runtime = new
            # requests that started on the old index finish on it; close it once they have had time to
            asyncio.get_running_loop().call_later(old.settings.request_timeout_s + 5, old.index.close)
            log.info(
                "reloaded index %s: build %s -> %s",
                new.index.name,
                old.index.manifest.build_id,
                new.index.manifest.build_id,
            )
            return new
