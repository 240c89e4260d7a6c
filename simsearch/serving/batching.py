"""Micro-batching: concurrent requests for one model are coalesced into batched model calls.

Model calls run on the batcher's own threads, never on the event loop. While batches are being computed,
new requests queue up and are all taken by the next batch. A request that arrives when the model is idle
is dispatched at once: nobody waits for company. ``max_wait_ms`` only adds a short wait when several
requests are already queued (a sign of load), to fill the batch.

Streams: on a CPU, one batch spread over every core is not the fastest way to serve many requests. The
cores' threads meet at a barrier after every operator, and any other work (HTTP parsing, JSON, FAISS)
that preempts one of them stalls the others. With ``streams = s``, up to ``s`` batches run at once, each
on ``1/s`` of the threads (``fn(items, alone=False)``), so the cores work independently; a request that
finds the model idle and nothing queued still runs alone on all of them (``fn(items, alone=True)``) and
nothing else starts until it is done, which keeps a lone query's latency. Measured on 2 cores
(bench/serve.py): see docs/results/serving.md.

Back-pressure: the queue holds at most ``max_queue`` items (texts or pairs); beyond that
:class:`QueueFullError` tells the caller to answer 429. Each request has a deadline; past it
:class:`RequestTimeoutError` tells the caller to answer 503 instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class QueueFullError(RuntimeError):
    """The batcher's queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"the {name} queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class RequestTimeoutError(TimeoutError):
    """The request's deadline passed before its batch was computed."""


@dataclass
class _Job(Generic[T]):
    items: list[T]
    future: asyncio.Future[np.ndarray]
    deadline: float
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T]):
    """Runs ``fn(items, alone) -> array`` (one row per item) on batches drawn from concurrent ``submit``
    calls; ``alone`` says whether the batch has the cores to itself (see the module's notes on streams)."""

    def __init__(
        self,
        fn: Callable[[list[T], bool], np.ndarray],
        *,
        name: str,
        max_batch: int = 64,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        streams: int = 1,
        on_batch: Callable[[int, bool, float], None] | None = None,
    ) -> None:
        if streams < 1:
            raise ValueError("streams must be at least 1")
        self.fn = fn
        self.name = name
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.streams = streams
        self.executor = ThreadPoolExecutor(max_workers=streams, thread_name_prefix=f"batch-{name}")
        # called with each batch's size, whether it ran alone and the model's seconds (metrics)
        self.on_batch = on_batch
        self.busy_seconds = 0.0  # model time summed over streams: busy / (wall * streams) is the utilisation
        self.batches = 0
        self.alone_batches = 0
        self._queue: asyncio.Queue[_Job[T]] | None = None
        self._queued_items = 0
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._exclusive = False

    @property
    def depth(self) -> int:
        """Items waiting (not yet in a running batch)."""
        return self._queued_items

    def start(self) -> None:
        if self._worker is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._worker, *self._running) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._worker = None
        self._running.clear()

    async def submit(self, items: Sequence[T], deadline_s: float) -> np.ndarray:
        """The rows of ``fn`` for ``items``, computed in a shared batch; raises QueueFullError or
        RequestTimeoutError."""
        if not items:
            return np.zeros((0,), dtype=np.float32)
        self.start()
        assert self._queue is not None
        if self._queued_items + len(items) > self.max_queue:
            raise QueueFullError(self.name, retry_after=1)
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(list(items), loop.create_future(), time.perf_counter() + deadline_s)
        self._queued_items += len(items)
        self._queue.put_nowait(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), deadline_s)
        except TimeoutError:
            job.future.cancel()  # the worker skips it if it has not started it yet
            raise RequestTimeoutError(f"no result from the {self.name} within {deadline_s:g} s") from None

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            first = await queue.get()
            # a free stream: none while a batch runs alone, at most `streams` at once
            while self._running and (self._exclusive or len(self._running) >= self.streams):
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            jobs = await self._gather(queue, first)
            for job in jobs:
                self._queued_items -= len(job.items)
            now = time.perf_counter()
            live = [j for j in jobs if not j.future.done() and j.deadline > now]
            for j in jobs:
                if j not in live and not j.future.done():
                    j.future.set_exception(RequestTimeoutError(f"deadline passed in the {self.name} queue"))
            if not live:
                continue
            # alone: one request met an idle model with nothing behind it (no load), or one stream only
            alone = self.streams == 1 or (not self._running and len(live) == 1 and queue.empty())
            self._exclusive = alone
            task = asyncio.get_running_loop().create_task(self._compute(live, alone))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self, queue: asyncio.Queue[_Job[T]], first: _Job[T]) -> list[_Job[T]]:
        """``first`` and what is already waiting, then (only under load) what comes within max_wait."""
        jobs = [first]
        size = len(first.items)
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch:
            if queue.empty():
                remaining = deadline - time.perf_counter()
                if len(jobs) == 1 or remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = queue.get_nowait()
            jobs.append(job)
            size += len(job.items)
        return jobs

    def _timed(self, batch: list[T], alone: bool) -> tuple[np.ndarray, float]:
        """``fn`` on the stream's thread, timed there (the hops to and from the thread are not model time)."""
        started = time.perf_counter()
        out = self.fn(batch, alone)
        return out, time.perf_counter() - started

    async def _compute(self, live: list[_Job[T]], alone: bool) -> None:
        batch = [item for j in live for item in j.items]
        try:
            out, seconds = await asyncio.get_running_loop().run_in_executor(self.executor, self._timed, batch, alone)
        except Exception as exc:  # a model error fails this batch's requests, not the worker
            for j in live:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        finally:
            if alone:
                self._exclusive = False
        self.batches += 1
        self.alone_batches += alone
        self.busy_seconds += seconds
        if self.on_batch is not None:
            self.on_batch(len(batch), alone, seconds)
        start = 0
        for j in live:
            if not j.future.done():
                j.future.set_result(out[start : start + len(j.items)])
            start += len(j.items)
