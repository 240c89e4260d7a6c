"""A lone batch runs on every configured thread, with each backend: measured from the threads' own CPU
time (/proc/self/task), not by reading a setting back."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.files import default_bi_model
from simsearch.serving.batching import MicroBatcher

TEXTS = [f"sentence number {i} about the stock market, the weather and a cat that sleeps all day" for i in range(96)]


def thread_ticks() -> dict[str, int]:
    out = {}
    for task in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{task}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[task] = int(fields[11]) + int(fields[12])  # utime + stime
    return out


@pytest.mark.skipif(not Path("/proc/self/task").is_dir() or len(os.sched_getaffinity(0)) < 2, reason="Linux, 2+ cores")
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_lone_batch_uses_every_thread(backend: str, tmp_path: Path) -> None:
    import shutil

    model = tmp_path / "m"
    shutil.copytree(default_bi_model(), model, ignore=shutil.ignore_patterns("onnx"))  # a private export
    encoder = BiEncoder.load(str(model), backend=backend, threads=2)  # type: ignore[arg-type]

    async def run() -> tuple[dict[str, int], int]:
        batcher = MicroBatcher(
            lambda items, alone: encoder.encode(items, threads=2 if alone else 1), name="bi", streams=2, max_batch=128
        )
        await batcher.submit(TEXTS[:2], 60)  # warm-up on the batcher's threads
        before = thread_ticks()
        for _ in range(3):
            await batcher.submit(TEXTS, 60)  # alone: nothing else is queued
        after = thread_ticks()
        alone = batcher.alone_batches
        await batcher.stop()
        return {t: after[t] - before.get(t, 0) for t in after}, alone

    busy, alone = asyncio.run(run())
    assert alone == 4
    ticks = sorted(busy.values(), reverse=True)
    # two threads did the work, the second at least a third as much as the first (not one busy core)
    assert ticks[0] > 0 and ticks[1] >= ticks[0] / 3, ticks[:4]


def test_lone_batches_of_every_batcher_run_on_the_one_lane() -> None:
    """Only one thread ever runs batches on every core (torch's OpenMP stops its workers spinning once its
    teams hold more threads than cores: see simsearch.serving.batching); stream batches run elsewhere."""
    import threading
    import time

    import numpy as np

    from simsearch.serving.batching import alone_lane

    seen: list[tuple[str, bool, int]] = []

    def model(name: str):
        def run(items: list, alone: bool) -> np.ndarray:
            seen.append((name, alone, threading.get_native_id()))
            time.sleep(0.005)
            return np.zeros((len(items), 1), dtype=np.float32)

        return run

    async def go() -> None:
        bi = MicroBatcher(model("bi"), name="bi", streams=2, max_wait_ms=0, max_batch=2)
        cross = MicroBatcher(model("cross"), name="cross", streams=2, max_wait_ms=0, max_batch=2)
        for _ in range(2):
            await bi.submit(["a"], 10)
            await cross.submit([("a", "b")], 10)
        await asyncio.gather(*(bi.submit([f"t{i}"], 10) for i in range(8)))  # queued together: streams
        await bi.stop()
        await cross.stop()

    asyncio.run(go())
    lane = alone_lane().submit(threading.get_native_id).result()
    alone = {(name, tid) for name, a, tid in seen if a}
    shared = {tid for _, a, tid in seen if not a}
    assert alone == {("bi", lane), ("cross", lane)}
    assert shared and lane not in shared


def test_work_on_a_passing_thread_returns_raises_and_ends() -> None:
    import threading

    from simsearch.serving.batching import on_passing_thread

    ran_on: list[threading.Thread] = []

    def work(x: int) -> int:
        ran_on.append(threading.current_thread())
        return x + 1

    assert on_passing_thread(work, 1) == 2
    assert ran_on[0] is not threading.current_thread() and not ran_on[0].is_alive()
    with pytest.raises(ZeroDivisionError):
        on_passing_thread(lambda: 1 / 0)


def test_work_after_a_lone_batch_runs_on_the_lane_and_under_load_in_the_pool() -> None:
    """submit_then: a lone request's follow-up work (FAISS, documents) runs on the lane right after the
    model; under load it runs in the thread pool, never on a stream's thread; its errors reach only its
    request, and its time is not counted as model time."""
    import threading
    import time

    import numpy as np

    from simsearch.serving.batching import alone_lane

    model_threads: dict[int, bool] = {}

    def model(items: list[int], alone: bool) -> np.ndarray:
        model_threads[threading.get_native_id()] = alone
        time.sleep(0.005)
        return np.asarray(items, dtype=np.float32)[:, None]

    def then(rows: np.ndarray) -> tuple[float, int]:
        time.sleep(0.05)  # slow work after the model: must not show up as model time
        return float(rows.sum()), threading.get_native_id()

    def failing(rows: np.ndarray) -> None:
        raise KeyError("after the model")

    async def go() -> tuple[list[tuple[float, int]], list[tuple[float, int]], float]:
        nonlocal split
        b = MicroBatcher(model, name="bi", streams=2, max_wait_ms=0, max_batch=1)
        lone = [await b.submit_then([i + 1], 10, then) for i in range(2)]
        split = await b.submit_then([3, 4], 10, then)  # two batches: the rows meet in the caller, then the pool
        with pytest.raises(KeyError, match="after the model"):
            await b.submit_then([5], 10, failing)
        assert (await b.submit([7], 10)).ravel().tolist() == [7.0]  # the batcher goes on after that error
        loaded = await asyncio.gather(*(b.submit_then([i], 10, then) for i in range(6)))  # split over streams
        busy = b.busy_seconds
        await b.stop()
        return lone, list(loaded), busy

    split: tuple[float, int] = (0.0, 0)
    lone, loaded, busy = asyncio.run(go())
    lane = alone_lane().submit(threading.get_native_id).result()
    assert [v for v, _ in lone] == [1.0, 2.0] and {t for _, t in lone} == {lane}
    assert [v for v, _ in loaded] == [float(i) for i in range(6)]
    assert split[0] == 7.0 and split[1] != lane
    streams = {t for t, alone in model_threads.items() if not alone}
    assert streams and not {t for _, t in loaded} & (streams | {lane})
    assert busy < 0.05 * 2  # the model slept 5 ms a batch; the follow-ups' 50 ms each are not in it


def test_with_one_stream_work_after_the_model_leaves_the_lane_while_others_wait() -> None:
    """With one stream every batch runs "alone"; the follow-up work stays on the lane only when nobody is
    queued behind it, so waiting requests are not held up by another's FAISS lookup."""
    import threading

    import numpy as np

    from simsearch.serving.batching import alone_lane

    def then(rows: np.ndarray) -> int:
        return threading.get_native_id()

    async def go() -> list[int]:
        b = MicroBatcher(lambda items, alone: np.zeros((len(items), 1)), name="bi", streams=1, max_batch=1)
        done = await asyncio.gather(*(b.submit_then([i], 10, then) for i in range(3)))
        await b.stop()
        return list(done)

    first, second, last = asyncio.run(go())
    lane = alone_lane().submit(threading.get_native_id).result()
    assert first != lane and second != lane  # two, then one, were waiting behind them
    assert last == lane  # the queue was empty by then


def test_the_service_package_sets_the_openmp_spin_before_torch_loads() -> None:
    """libgomp reads GOMP_SPINCOUNT once, when torch loads it: the service's default must be in the
    environment by then, and a value the operator set must win."""
    import subprocess
    import sys

    probe = "import os, sys, service; print('torch' in sys.modules, os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "10000"]
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={**env, "GOMP_SPINCOUNT": "77"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["False", "77"]


def test_a_one_query_search_runs_on_one_openmp_thread_of_its_own_thread() -> None:
    """libgomp keeps its thread count per calling thread: a search of a few queries sets one OpenMP thread on
    the thread that searches (no team contending with the model), a batch gets every core again, and other
    threads keep their own setting."""
    from concurrent.futures import ThreadPoolExecutor

    import faiss

    from simsearch.ann.faiss_index import ALL_THREADS, SMALL_BATCH, FaissIndex

    index = FaissIndex(8)
    rng = np.random.default_rng(0)
    index.add(rng.normal(size=(200, 8)).astype(np.float32))
    queries = rng.normal(size=(64, 8)).astype(np.float32)

    def search_then_threads(n: int) -> int:
        index.search(queries[:n], 5)
        return int(faiss.omp_get_max_threads())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(search_then_threads, 1).result() == 1
        assert pool.submit(search_then_threads, SMALL_BATCH).result() == ALL_THREADS
        assert pool.submit(search_then_threads, SMALL_BATCH - 1).result() == 1
    with ThreadPoolExecutor(1) as pool:  # a thread that has not searched keeps the process default
        assert pool.submit(faiss.omp_get_max_threads).result() == ALL_THREADS
