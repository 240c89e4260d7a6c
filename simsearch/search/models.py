"""The model calls a search makes, injected: plain calls in jobs, the micro-batchers in the service.

The pipeline is written once as coroutines over :class:`Models`; :class:`DirectModels` runs every call
inline (offline jobs, benchmarks, tests), the serving engine supplies batched calls and a thread pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

import numpy as np

from simsearch.search.types import ModeUnavailableError

T = TypeVar("T")

NO_CROSS_ENCODER = "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL to a trained one"


class Models(Protocol):
    """Model calls and a place to run blocking work (index search, document reads)."""

    @property
    def has_cross(self) -> bool: ...

    async def encode(self, texts: list[str]) -> np.ndarray:
        """One unit vector per text (the bi-encoder)."""
        ...

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """One cross-encoder score per pair; :class:`ModeUnavailableError` without a cross-encoder."""
        ...

    async def blocking(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` where blocking is allowed, and return its result."""
        ...

    async def encode_then(self, texts: list[str], then: Callable[[np.ndarray], T]) -> T:
        """``then(vectors)`` of :meth:`encode`, run where blocking is allowed: the service runs it on the
        model's own thread right after a lone batch (one thread hop fewer for a lone request)."""
        ...


class Encoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class Scorer(Protocol):
    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray: ...


class DirectModels:
    """Every call inline, on the caller's thread: for jobs that run one search at a time."""

    def __init__(self, encoder: Encoder, cross: Scorer | None = None) -> None:
        self.encoder = encoder
        self.cross = cross

    @property
    def has_cross(self) -> bool:
        return self.cross is not None

    async def encode(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if self.cross is None:
            raise ModeUnavailableError(NO_CROSS_ENCODER)
        return self.cross.score(pairs)

    async def blocking(self, fn: Callable[[], T]) -> T:
        return fn()

    async def encode_then(self, texts: list[str], then: Callable[[np.ndarray], T]) -> T:
        return then(self.encoder.encode(texts))


_runner: asyncio.Runner | None = None


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a pipeline coroutine from synchronous code (jobs), on one event loop kept for the process."""
    global _runner
    if _runner is None:
        _runner = asyncio.Runner()
    return _runner.run(coro)
