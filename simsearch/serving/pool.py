"""The service's models: one micro-batcher per registered model that is in use, shared by every
collection that names the model (a hundred collections of one model cost one model and one queue)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from simsearch.models.registry import LoadedModel, ModelRegistry
from simsearch.search import ModeUnavailableError
from simsearch.search.models import NO_CROSS_ENCODER
from simsearch.serving.batching import MicroBatcher
from simsearch.serving.runtime import Threads
from simsearch.settings import Settings

T = TypeVar("T")
BatchObserver = Callable[[int, bool, float], None]


class BatchedModels:
    """The pipeline's model calls (simsearch.search.models.Models) through the micro-batchers; blocking
    work in the thread pool."""

    def __init__(
        self,
        bi: MicroBatcher[str],
        cross: MicroBatcher[tuple[str, str]] | None,
        timeout: float,
        no_cross: str = NO_CROSS_ENCODER,
    ) -> None:
        self.bi = bi
        self.cross = cross
        self.timeout = timeout
        self.no_cross = no_cross  # why there is no cross-encoder, for the modes that need one

    @property
    def has_cross(self) -> bool:
        return self.cross is not None

    async def encode(self, texts: list[str]) -> np.ndarray:
        return await self.bi.submit(texts, self.timeout)

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if self.cross is None:
            raise ModeUnavailableError(self.no_cross)
        return await self.cross.submit(pairs, self.timeout)

    async def blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def encode_then(self, texts: list[str], then: Callable[[np.ndarray], T]) -> T:
        return await self.bi.submit_then(texts, self.timeout, then)


class ModelPool:
    """Loaded models and their batchers, by registry name. ``observer(model_name)`` gives the metrics
    callback of a new batcher."""

    def __init__(
        self,
        settings: Settings,
        registry: ModelRegistry,
        threads: Threads,
        observer: Callable[[str], BatchObserver] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.threads = threads
        self.observer = observer
        self.batchers: dict[str, MicroBatcher[Any]] = {}

    def batcher(self, loaded: LoadedModel) -> MicroBatcher[Any]:
        """The one batcher of a loaded model (made on first use, on the event loop's thread)."""
        found = self.batchers.get(loaded.name)
        if found is None:  # another name for the same loaded model shares its batcher (one queue per model)
            same = [n for n in self.batchers if getattr(self.registry.peek(n), "model", None) is loaded.model]
            found = self.batchers[same[0]] if same else None
        if found is not None:
            self.batchers[loaded.name] = found
            return found
        s, lanes, model = self.settings, self.threads, loaded.model
        if loaded.entry.kind == "cross":

            def call(items: list[Any], alone: bool) -> np.ndarray:
                return model.score(items, threads=lanes.count(alone))

            queue = s.max_cross_queue
        else:

            def call(items: list[Any], alone: bool) -> np.ndarray:
                return model.encode(items, threads=lanes.count(alone))

            queue = s.max_queue
        batcher: MicroBatcher[Any] = MicroBatcher(
            call,
            name=loaded.name,
            max_batch=s.max_batch,
            max_wait_ms=s.max_wait_ms,
            max_queue=queue,
            streams=lanes.streams,
        )
        if self.observer is not None:
            batcher.on_batch = self.observer(loaded.name)
        self.batchers[loaded.name] = batcher
        return batcher

    def models_for(self, bi: LoadedModel, cross: LoadedModel | None, collection: str = "") -> BatchedModels:
        no_cross = (
            f"collection {collection!r} names no cross-encoder: create a collection with `cross` set to one of "
            f"the registry's cross-encoders ({', '.join(self.registry.names('cross')) or 'none configured'})"
        )
        return BatchedModels(
            self.batcher(bi),
            self.batcher(cross) if cross is not None else None,
            self.settings.request_timeout_s,
            no_cross if collection and self.registry.names("cross") else NO_CROSS_ENCODER,
        )

    async def load(self, name: str, kind: str = "bi") -> LoadedModel:
        """The model (loaded once, in a thread: loading takes seconds)."""
        found = self.registry.peek(name)
        if found is not None and found.entry.kind == kind:
            return found
        return await asyncio.to_thread(self.registry.get, name, kind)  # type: ignore[arg-type]

    def depths(self) -> dict[str, int]:
        return {name: b.depth for name, b in self.batchers.items()}

    async def stop(self) -> None:
        for batcher in self.batchers.values():
            await batcher.stop()
