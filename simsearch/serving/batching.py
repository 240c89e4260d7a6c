"""Micro-batching: concurrent requests for one model are coalesced into batched model calls.

Model calls run on the batcher's own threads, never on the event loop. While batches are being computed,
new requests queue up and are all taken by the next batch. A request that arrives when the model is idle
is dispatched at once: nobody waits for company. ``max_wait_ms`` can add a short wait when several
requests are already queued (a sign of load), to fill the batch; by default it is 0, because with two
streams a free stream that waits leaves its core idle (measured: docs/results/serving.md).

Streams: on a CPU, one batch spread over every core is not the fastest way to serve many requests. The
cores' threads meet at a barrier after every operator, and any other work (HTTP parsing, JSON, FAISS)
that preempts one of them stalls the others. With ``streams = s``, up to ``s`` batches run at once, each
on ``1/s`` of the threads (``fn(items, alone=False)``), so the cores work independently; a request that
finds the model idle and nothing queued still runs alone on all of them (``fn(items, alone=True)``) and
nothing else starts until it is done, which keeps a lone query's latency. Measured on 2 cores
(bench/serve.py): see docs/results/serving.md.

The alone lane: lone batches of every model in the process run on one thread, :func:`alone_lane`.
Torch's OpenMP (libgomp) keeps a team of worker threads per calling thread, and once the teams together
hold more threads than there are cores it stops letting idle workers spin (100 spins instead of about
3 ms), so every one of a forward pass's ~100 parallel regions pays a futex wake-up. Two callers that
each once ran a multi-thread batch (a warm-up on the loading thread and a stream; or two streams; or the
bi- and the cross-encoder's batchers) are enough for that on 2 cores: a lone torch query measured about
15 % slower. So only the lane ever runs a batch on more than one thread; stream batches run on one
(no team), and loading and other warm-ups run on threads that end (their teams go with them).

Work after the model: ``submit_then(items, deadline, then)`` returns ``then(rows)`` (a search's FAISS
lookup and document reads). When the request's batch ran alone, ``then`` runs on the lane right after the
model, on the thread that is already awake; otherwise the rows come back to the caller, which runs
``then`` in the thread pool, so the streams stay free for the model. For a lone search this saves one
round trip between the event loop and a pool thread.

Back-pressure: the queue holds at most ``max_queue`` items (texts or pairs); beyond that
:class:`QueueFullError` tells the caller to answer 429, before any work is done for the request. Each
request has a deadline; past it :class:`RequestTimeoutError` tells the caller to answer 503 instead of
hanging. A request larger than ``max_batch`` is split into batches of at most ``max_batch`` items, so the
short requests that arrive meanwhile interleave with it instead of waiting for all of it. When a caller
goes away (its task is cancelled: the client disconnected), the parts of its request not yet started are
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")
_lane: ThreadPoolExecutor | None = None
_lane_lock = threading.Lock()


def alone_lane() -> ThreadPoolExecutor:
    """The one thread, shared by every batcher of the process, that runs batches on all the cores (see the
    module's notes on the alone lane)."""
    global _lane
    with _lane_lock:
        if _lane is None:
            _lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-alone")
        return _lane


def on_passing_thread(fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)`` on a thread that ends afterwards, so the torch threads it makes go with it (loading,
    warm-ups, a build before serving; see the module's notes on the alone lane)."""
    with ThreadPoolExecutor(1, thread_name_prefix="passing") as thread:
        return thread.submit(fn, *args).result()


class QueueFullError(RuntimeError):
    """The batcher's queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: int) -> None:
        super().__init__(f"the {name} queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class RequestTimeoutError(TimeoutError):
    """The request's deadline passed before its batch was computed."""


@dataclass(frozen=True)
class _After:
    """What ``then`` returned, on the lane after a lone batch."""

    value: Any


@dataclass
class _Job(Generic[T]):
    items: list[T]
    future: asyncio.Future[Any]  # the rows, or an _After when ``then`` ran on the lane
    deadline: float
    then: Callable[[np.ndarray], Any] | None = None
    following: bool = False  # ``then`` has started on the lane (set there)
    enqueued: float = field(default_factory=time.perf_counter)
    taken: int = 0  # items handed to batches so far
    parts: dict[int, np.ndarray] = field(default_factory=dict)  # start -> rows computed

    @property
    def waiting(self) -> int:
        return len(self.items) - self.taken

    def deliver(self, start: int, rows: np.ndarray) -> None:
        self.parts[start] = rows
        if sum(len(p) for p in self.parts.values()) == len(self.items) and not self.future.done():
            self.future.set_result(np.concatenate([self.parts[k] for k in sorted(self.parts)]))


@dataclass
class _Slice(Generic[T]):
    job: _Job[T]
    start: int
    stop: int


class MicroBatcher(Generic[T]):
    """Runs ``fn(items, alone) -> array`` (one row per item) on batches drawn from concurrent ``submit``
    calls; ``alone`` says whether the batch has the cores to itself (see the module's notes on streams)."""

    def __init__(
        self,
        fn: Callable[[list[T], bool], np.ndarray],
        *,
        name: str,
        max_batch: int = 64,
        max_wait_ms: float = 0.0,
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
        self.dropped_items = 0  # items of requests whose callers went away before they were computed
        self._queue: deque[_Job[T]] = deque()
        self._arrived: asyncio.Event | None = None
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
            self._arrived = asyncio.Event()
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
        """The rows of ``fn`` for ``items``, computed in shared batches; raises QueueFullError (before any
        work) or RequestTimeoutError. Cancelling the caller drops what has not started of its request."""
        if not items:
            return np.zeros((0,), dtype=np.float32)
        out: np.ndarray = await self._submit(items, deadline_s, None)
        return out

    async def submit_then(self, items: Sequence[T], deadline_s: float, then: Callable[[np.ndarray], R]) -> R:
        """``then(rows)`` for the rows :meth:`submit` would return, run on the lane when the batch ran
        alone and in the thread pool otherwise (see the module's notes on work after the model)."""
        if not items:
            return await asyncio.to_thread(then, np.zeros((0,), dtype=np.float32))
        out = await self._submit(items, deadline_s, then)
        if isinstance(out, _After):
            value: R = out.value
            return value
        return await asyncio.to_thread(then, out)

    async def _submit(self, items: Sequence[T], deadline_s: float, then: Callable[[np.ndarray], Any] | None) -> Any:
        self.start()
        assert self._arrived is not None
        if self._queued_items + len(items) > self.max_queue:
            raise QueueFullError(self.name, retry_after=1)
        loop = asyncio.get_running_loop()
        job: _Job[T] = _Job(list(items), loop.create_future(), time.perf_counter() + deadline_s, then)
        self._queued_items += len(items)
        self._queue.append(job)
        self._arrived.set()
        try:
            try:
                done, _ = await asyncio.wait({job.future}, timeout=deadline_s)
            except asyncio.CancelledError:  # the caller went away
                await self._follow_up_done(job)
                raise
            if not done and not job.following:
                raise RequestTimeoutError(f"no result from the {self.name} within {deadline_s:g} s")
            await self._follow_up_done(job)
            return job.future.result()
        finally:
            if not job.future.done():
                job.future.cancel()  # its unstarted items are dropped
            self._forget(job)

    @staticmethod
    async def _follow_up_done(job: _Job[Any]) -> None:
        """Once ``then`` has started on the lane it runs to its end (bounded work: a lookup, document
        reads), and the caller waits for it even past its deadline or when it goes away: the caller holds
        what ``then`` reads (the runtime, the index) open until then."""
        if job.following and not job.future.done():
            await asyncio.wait({job.future})

    def _forget(self, job: _Job[T]) -> None:
        """A finished, timed-out or abandoned job leaves the queue; its unstarted items are dropped."""
        if job.waiting and job in self._queue:
            self._queue.remove(job)
            self._queued_items -= job.waiting
            self.dropped_items += job.waiting
            job.taken = len(job.items)

    async def _next(self) -> None:
        assert self._arrived is not None
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()

    async def _run(self) -> None:
        while True:
            await self._next()
            # a free stream: none while a batch runs alone, at most `streams` at once
            while self._running and (self._exclusive or len(self._running) >= self.streams):
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
            slices = await self._gather()
            if not slices:
                continue
            # alone: one request met an idle model with nothing behind it (no load), or one stream only
            alone = self.streams == 1 or (not self._running and len(slices) == 1 and not self._queue)
            self._exclusive = alone
            task = asyncio.get_running_loop().create_task(self._compute(slices, alone))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _take(self, room: int) -> _Slice[T] | None:
        """Up to ``room`` items of the first live job (its deadline not passed, its caller still there)."""
        now = time.perf_counter()
        while self._queue:
            job = self._queue[0]
            if job.future.done() or job.deadline <= now:
                self._queue.popleft()
                self._queued_items -= job.waiting
                if not job.future.done():
                    job.future.set_exception(RequestTimeoutError(f"deadline passed in the {self.name} queue"))
                job.taken = len(job.items)
                continue
            start = job.taken
            stop = min(len(job.items), start + room)
            job.taken = stop
            self._queued_items -= stop - start
            self._queue.popleft()
            if job.waiting:  # the rest goes behind the requests that came meanwhile: round robin
                self._queue.append(job)
            return _Slice(job, start, stop)
        return None

    async def _gather(self) -> list[_Slice[T]]:
        """What is already waiting, then (only under load) what comes within max_wait, up to max_batch."""
        slices: list[_Slice[T]] = []
        size = 0
        deadline = time.perf_counter() + self.max_wait
        while size < self.max_batch:
            part = self._take(self.max_batch - size)
            if part is None:
                remaining = deadline - time.perf_counter()
                if len(slices) <= 1 or remaining <= 0:
                    break
                assert self._arrived is not None
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
                continue
            slices.append(part)
            size += part.stop - part.start
        return slices

    def _timed(self, batch: list[T], alone: bool, job: _Job[T] | None = None) -> tuple[np.ndarray, float, Any]:
        """``fn`` on the stream's thread, timed there (the hops to and from the thread are not model time);
        then ``job.then`` on its rows, if given, as an :class:`_After` or the exception it raised."""
        started = time.perf_counter()
        out = self.fn(batch, alone)
        seconds = time.perf_counter() - started
        after: Any = None
        if job is not None and job.then is not None:
            job.following = True  # first: from now on a caller past its deadline waits for this (see submit)
            if not job.future.done():  # its caller is still there
                try:
                    after = _After(job.then(out))
                except Exception as exc:  # fails this request only, not the model's accounting
                    after = exc
        return out, seconds, after

    async def _compute(self, slices: list[_Slice[T]], alone: bool) -> None:
        batch = [item for s in slices for item in s.job.items[s.start : s.stop]]
        # a lone batch holding all of one request that has work after the model, with nobody waiting (with
        # one stream a batch is always "alone"): that work runs on the lane, right after the model
        first = slices[0]
        whole = len(slices) == 1 and first.start == 0 and first.stop == len(first.job.items)
        follow = first.job if alone and whole and not self._queue and first.job.then is not None else None
        try:
            executor = alone_lane() if alone else self.executor
            out, seconds, after = await asyncio.get_running_loop().run_in_executor(
                executor, self._timed, batch, alone, follow
            )
        except Exception as exc:  # a model error fails this batch's requests, not the worker
            for s in slices:
                if not s.job.future.done():
                    s.job.future.set_exception(exc)
            return
        finally:
            if alone:
                self._exclusive = False
        self.batches += 1
        self.alone_batches += alone
        self.busy_seconds += seconds
        if self.on_batch is not None:
            self.on_batch(len(batch), alone, seconds)
        if follow is not None:  # the follow-up ran (or was skipped for a caller that left) on the lane
            if not follow.future.done():
                if isinstance(after, Exception):
                    follow.future.set_exception(after)
                else:
                    follow.future.set_result(after)
            return
        offset = 0
        for s in slices:
            n = s.stop - s.start
            if not s.job.future.done():
                s.job.deliver(s.start, out[offset : offset + n])
            offset += n
