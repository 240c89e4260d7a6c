"""Operations: micro-batching and back-pressure, metrics, request ids, API keys, body limits, CORS, the
loaded manifest, and hot reload (including under load and with a broken new build)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from simsearch.serving.batching import MicroBatcher, QueueFullError, RequestTimeoutError
from simsearch.settings import Settings
from tests.conftest import DOCS, write_jsonl

# ---- the micro-batcher --------------------------------------------------------------------------------


class GatedModel:
    """A fake model: one row per item (the item doubled); blocks while the gate is closed; records batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int], alone: bool) -> np.ndarray:
        self.entered.set()
        self.gate.wait(30)
        self.batches.append(list(items))
        return np.array([[2 * i] for i in items])


@pytest.mark.anyio
async def test_concurrent_requests_share_batches_and_keep_their_rows() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, name="fake", max_batch=64, max_wait_ms=0)
    model.gate.clear()
    first = asyncio.create_task(batcher.submit([0], 10))
    await asyncio.to_thread(model.entered.wait, 10)  # the model is busy with request 0
    rest = [asyncio.create_task(batcher.submit([i, 100 + i], 10)) for i in range(1, 9)]
    await asyncio.sleep(0.05)
    model.gate.set()
    assert (await first).tolist() == [[0]]
    for i, task in enumerate(rest, 1):
        assert (await task).tolist() == [[2 * i], [200 + 2 * i]]  # each caller gets its own rows back
    assert model.batches[0] == [0] and len(model.batches) == 2 and len(model.batches[1]) == 16
    await batcher.stop()


@pytest.mark.anyio
async def test_a_lone_request_does_not_wait_for_company() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, name="fake", max_batch=64, max_wait_ms=10_000)
    started = time.perf_counter()
    assert (await batcher.submit([3], 30)).tolist() == [[6]]
    assert time.perf_counter() - started < 5  # far below the 10 s it would wait to fill a batch
    await batcher.stop()


@pytest.mark.anyio
async def test_full_queue_and_deadline() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, name="fake", max_batch=4, max_queue=3)
    model.gate.clear()
    busy = asyncio.create_task(batcher.submit([1], 10))
    await asyncio.to_thread(model.entered.wait, 10)
    waiting = asyncio.create_task(batcher.submit([2, 3], 10))
    await asyncio.sleep(0.01)
    with pytest.raises(QueueFullError, match="the fake queue is full"):
        await batcher.submit([4, 5], 10)
    with pytest.raises(RequestTimeoutError):
        await batcher.submit([6], 0.05)
    model.gate.set()
    assert (await busy).tolist() == [[2]] and (await waiting).tolist() == [[4], [6]]
    assert all(6 not in b for b in model.batches)  # the timed-out request was never computed
    await batcher.stop()


@pytest.mark.anyio
async def test_a_large_request_is_split_so_short_ones_interleave() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, name="fake", max_batch=4, max_wait_ms=0)
    model.gate.clear()
    big = asyncio.create_task(batcher.submit(list(range(100, 112)), 10))  # 12 items: three batches of 4
    await asyncio.to_thread(model.entered.wait, 10)
    short = asyncio.create_task(batcher.submit([1], 10))
    await asyncio.sleep(0.05)
    model.gate.set()
    assert (await short).tolist() == [[2]]
    assert (await big).tolist() == [[2 * i] for i in range(100, 112)]  # the rows in order, whatever the batches
    assert model.batches[0] == [100, 101, 102, 103] and all(len(b) <= 4 for b in model.batches)
    order = [i for b in model.batches for i in b]
    assert order.index(1) < order.index(111)  # the short request did not wait for all of the long one
    await batcher.stop()


@pytest.mark.anyio
async def test_a_caller_that_goes_away_drops_its_unstarted_work() -> None:
    model = GatedModel()
    batcher = MicroBatcher(model, name="fake", max_batch=4, max_wait_ms=0)
    model.gate.clear()
    task = asyncio.create_task(batcher.submit(list(range(20)), 10))
    await asyncio.to_thread(model.entered.wait, 10)  # the first batch of 4 is running
    task.cancel()  # the client disconnected
    with pytest.raises(asyncio.CancelledError):
        await task
    model.gate.set()
    assert (await batcher.submit([7], 10)).tolist() == [[14]]
    assert [i for b in model.batches for i in b] == [0, 1, 2, 3, 7]  # 4..19 were never computed
    assert batcher.dropped_items == 16 and batcher.depth == 0
    await batcher.stop()


class StreamModel:
    """A fake model for streams: batches that do not run alone meet at a two-party barrier, so they only
    finish if two of them run at the same time; the first call can be held; every call is recorded."""

    def __init__(self) -> None:
        self.started: list[tuple[list[int], bool]] = []
        self.barrier = threading.Barrier(2, timeout=10)
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.lock = threading.Lock()
        self.active = self.most_active = 0

    def __call__(self, items: list[int], alone: bool) -> np.ndarray:
        with self.lock:
            self.started.append((list(items), alone))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.entered.set()
        try:
            self.hold.wait(30)
            if not alone:
                self.barrier.wait()
        finally:
            with self.lock:
                self.active -= 1
        return np.array([[2 * i] for i in items])


@pytest.mark.anyio
async def test_streams_run_batches_side_by_side_and_a_lone_request_alone() -> None:
    model = StreamModel()
    batcher = MicroBatcher(model, name="fake", max_batch=4, max_wait_ms=0, streams=2)
    assert (await batcher.submit([1], 10)).tolist() == [[2]]
    assert model.started == [([1], True)]  # idle model, nothing queued: all threads, alone
    model.started.clear()
    model.hold.clear()
    model.entered.clear()
    first = asyncio.create_task(batcher.submit([0], 10))
    await asyncio.to_thread(model.entered.wait, 10)
    rest = [asyncio.create_task(batcher.submit([i], 10)) for i in range(1, 9)]
    await asyncio.sleep(0.05)
    assert model.started == [([0], True)]  # nothing starts beside a batch that runs alone
    model.hold.set()
    assert (await first).tolist() == [[0]]
    assert [(await t).tolist() for t in rest] == [[[2 * i]] for i in range(1, 9)]
    # then the load: two batches of four at once (the barrier would time out otherwise), on shared threads
    assert sorted(model.started[1:]) == [([1, 2, 3, 4], False), ([5, 6, 7, 8], False)]
    assert model.most_active == 2
    await batcher.stop()


@pytest.mark.anyio
async def test_one_stream_runs_every_batch_alone_and_one_at_a_time() -> None:
    model = StreamModel()
    batcher = MicroBatcher(model, name="fake", max_batch=4, max_wait_ms=0, streams=1)
    model.hold.clear()
    tasks = [asyncio.create_task(batcher.submit([i], 10)) for i in range(9)]
    await asyncio.sleep(0.05)
    model.hold.set()
    assert [(await t).tolist() for t in tasks] == [[[2 * i]] for i in range(9)]
    assert all(alone for _, alone in model.started) and model.most_active == 1
    assert [x for items, _ in model.started for x in items] == list(range(9))
    await batcher.stop()


@pytest.mark.anyio
async def test_model_time_is_counted_per_stream_without_the_queue_wait() -> None:
    def slow(items: list[int], alone: bool) -> np.ndarray:
        time.sleep(0.05)
        return np.array([[i] for i in items])

    seen: list[tuple[int, bool, float]] = []
    batcher = MicroBatcher(slow, name="fake", max_batch=2, max_wait_ms=0, streams=2, on_batch=lambda *a: seen.append(a))
    started = time.perf_counter()
    await asyncio.gather(*(batcher.submit([i], 10) for i in range(6)))
    wall = time.perf_counter() - started
    assert sum(size for size, _, _ in seen) == 6 and all(0.05 <= t < 0.5 for _, _, t in seen)
    assert batcher.busy_seconds == pytest.approx(sum(t for _, _, t in seen))
    # the requests queued behind a batch wait for it, but only model time is counted: two streams busy at
    # once count twice, so the sum can exceed the wall time but not twice the wall time
    assert len(seen) * 0.05 <= batcher.busy_seconds <= 2 * wall
    await batcher.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- HTTP: back-pressure ------------------------------------------------------------------------------


def test_busy_model_gives_429_then_503(settings_for, monkeypatch: pytest.MonkeyPatch) -> None:
    from simsearch.models.bi_encoder import BiEncoder

    gate, entered = threading.Event(), threading.Event()
    real = BiEncoder.encode

    def slow(self, texts, **kw):
        entered.set()
        gate.wait(30)
        return real(self, texts, **kw)

    # the smallest queue the settings allow for these limits: two texts
    settings = settings_for(max_queue=2, max_pairs=1, max_targets=1, max_write_batch=1, request_timeout_s=0.5)
    monkeypatch.setattr(BiEncoder, "encode", slow)
    gate.set()  # open while the app starts (its warm-up encodes once)
    with TestClient(create_app(settings)) as client:
        gate.clear()
        entered.clear()
        results: dict[str, httpx.Response] = {}

        def post(name: str) -> threading.Thread:
            t = threading.Thread(target=lambda: results.setdefault(name, client.post("/search", json={"query": name})))
            t.start()
            return t

        first = post("a")
        assert entered.wait(10)  # a is in the model
        waiting = [post("b"), post("c")]
        time.sleep(0.1)  # b and c wait in the queue (depth 2 = the limit)
        r = client.post("/search", json={"query": "d"})
        assert r.status_code == 429 and r.headers["retry-after"] == "1" and "queue is full" in r.json()["message"]
        for t in [first, *waiting]:
            t.join(10)
        gate.set()
        for name in "abc":  # every one of them waited past its deadline: 503, not a hang and not a 500
            assert results[name].status_code == 503 and "timed out" in results[name].json()["message"], name
        assert client.post("/search", json={"query": "e"}).status_code == 200  # and the service recovers


def test_settings_that_would_refuse_every_large_request_are_refused() -> None:
    with pytest.raises(ValueError, match=r"max_queue \(100\) must hold the largest request's texts \(512"):
        Settings(max_queue=100)
    with pytest.raises(ValueError, match=r"max_cross_queue \(200\) must hold .* \(625: 1.25 x max_rerank"):
        Settings(max_cross_queue=200)


# ---- metrics, ids, keys, limits, CORS ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tiny_model: str, built_index: Path) -> Iterator[TestClient]:
    settings = Settings(
        bi_model=tiny_model,
        index_dir=built_index.parent,
        index_name=built_index.name,
        api_keys="read-key-one-000001,read-key-two-000002",
        max_body_bytes=2048,
        cors_origins="https://app.example",
    )
    with TestClient(create_app(settings)) as client:
        yield client


AUTH = {"authorization": "Bearer read-key-two-000002"}


def test_api_keys(keyed: TestClient) -> None:
    r = keyed.post("/search", json={"query": "tea"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert (
        keyed.post(
            "/search", json={"query": "tea"}, headers={"authorization": "Bearer read-key-three-00003"}
        ).status_code
        == 401
    )
    assert (
        keyed.post("/search", json={"query": "tea"}, headers={"authorization": "Basic read-key-two-000002"}).status_code
        == 401
    )
    assert keyed.post("/search", json={"query": "tea"}, headers=AUTH).status_code == 200
    assert keyed.get("/health").status_code == 200 and keyed.get("/ready").status_code == 200
    assert keyed.get("/metrics").status_code == 401 and keyed.get("/indexes").status_code == 401


def test_metrics_after_traffic(keyed: TestClient) -> None:
    keyed.post("/search", json={"query": "tea"}, headers=AUTH)
    keyed.post("/similarity", json={"pairs": [["a", "b"]]}, headers=AUTH)
    keyed.post("/search", json={"query": ""}, headers=AUTH)
    text = keyed.get("/metrics", headers=AUTH).text
    assert 'simsearch_requests_total{endpoint="/search",status="200"}' in text
    assert 'simsearch_requests_total{endpoint="/search",status="422"}' in text
    assert 'simsearch_request_seconds_bucket{endpoint="/similarity",le="0.005"}' in text
    assert 'simsearch_batch_size_count{model="default"}' in text
    ran = re.findall(r'simsearch_batches_total\{model="default",run="(alone|shared)"\} (\d+)', text)
    assert sum(int(n) for _, n in ran) >= 1  # each batch counted once, by how it ran
    assert 'simsearch_queue_depth{model="default"} 0.0' in text
    busy = re.search(r'simsearch_model_seconds_total\{model="default"\} ([0-9.e-]+)', text)
    assert busy is not None and float(busy.group(1)) > 0
    assert f"simsearch_index_documents {float(len(DOCS))}" in text


def test_request_ids(keyed: TestClient) -> None:
    r = keyed.get("/health", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    generated = keyed.get("/health", headers={"x-request-id": "bad id\nwith newline"}).headers["x-request-id"]
    assert len(generated) == 32 and generated.isalnum()


def test_body_size_limit(keyed: TestClient) -> None:
    big = {"query": "x" * 3000}
    r = keyed.post("/search", json=big, headers=AUTH)
    assert r.status_code == 413 and "the limit is 2048 (SIMSEARCH_MAX_BODY_BYTES)" in r.json()["message"]

    def chunks() -> Iterator[bytes]:  # no content-length: the limit is enforced while reading
        yield b'{"query": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}'

    r = keyed.post("/search", content=chunks(), headers={**AUTH, "content-type": "application/json"})
    assert r.status_code == 413


def test_cors_only_for_configured_origins(keyed: TestClient, client_without_cors: TestClient) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    r = keyed.options("/search", headers=preflight)
    assert r.headers.get("access-control-allow-origin") == "https://app.example"
    r = client_without_cors.options("/search", headers=preflight)
    assert "access-control-allow-origin" not in r.headers


@pytest.fixture
def client_without_cors(settings_for) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for())) as client:
        yield client


def test_indexes_shows_the_loaded_manifest(keyed: TestClient, built_index: Path) -> None:
    body = keyed.get("/indexes", headers=AUTH).json()
    assert body["name"] == "tiny" and body["folder"] == built_index.resolve().name
    assert body["manifest"]["count"] == len(DOCS) and body["manifest"]["index"]["type"] == "faiss"


# ---- hot reload ---------------------------------------------------------------------------------------

NEW_DOCS = [
    {"_id": f"n{i}", "text": f"fresh document number {i} about {w}"}
    for i, w in enumerate(["tea", "rain", "cats", "cars", "bread", "music"])
]


@pytest.fixture
def reloadable(tmp_path: Path, tiny_model: str, tiny_encoder) -> tuple[Settings, Path]:
    from simsearch.index.build import build_index

    corpus = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    build_index(corpus, tiny_encoder, tmp_path / "indexes", "live", progress=False)
    settings = Settings(
        bi_model=tiny_model, index_dir=tmp_path / "indexes", index_name="live", admin_key="admin-key-0123456789"
    )
    return settings, tmp_path


def test_reload_swaps_in_the_new_build(reloadable, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    settings, tmp = reloadable
    with TestClient(create_app(settings)) as client:
        before = client.get("/ready").json()["build_id"]
        build_index(write_jsonl(tmp / "new.jsonl", NEW_DOCS), tiny_encoder, tmp / "indexes", "live", progress=False)
        assert client.post("/admin/reload").status_code == 401  # no key
        assert client.post("/admin/reload", headers={"authorization": "Bearer wrong"}).status_code == 401
        r = client.post("/admin/reload", headers={"authorization": "Bearer admin-key-0123456789"})
        assert r.status_code == 200 and r.json()["previous_build_id"] == before
        assert client.get("/ready").json()["build_id"] == r.json()["build_id"] != before
        hits = client.post("/search", json={"query": "tea", "k": 3}).json()["hits"]
        assert all(h["id"].startswith("n") for h in hits)


def test_broken_new_build_is_refused_and_the_old_one_serves(reloadable, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    settings, tmp = reloadable
    with TestClient(create_app(settings)) as client:
        before = client.get("/ready").json()["build_id"]
        path = build_index(
            write_jsonl(tmp / "new.jsonl", NEW_DOCS), tiny_encoder, tmp / "indexes", "live", progress=False
        )
        (path.resolve() / "index.faiss").write_bytes(b"truncated")
        r = client.post("/admin/reload", headers={"authorization": "Bearer admin-key-0123456789"})
        assert r.status_code == 409 and f"still serving build {before}" in r.json()["message"]
        assert "index.faiss is corrupt" in r.json()["message"]
        assert client.get("/ready").json()["build_id"] == before
        assert client.post("/search", json={"query": "tea"}).status_code == 200


@pytest.mark.slow
def test_no_request_fails_while_reloading_under_load(reloadable, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    settings, tmp = reloadable
    statuses: list[int] = []
    stop = threading.Event()
    with TestClient(create_app(settings)) as client:

        def hammer() -> None:
            while not stop.is_set():
                statuses.append(client.post("/search", json={"query": "tea", "k": 5}).status_code)

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for w in workers:
            w.start()
        builds = set()
        for i in range(4):
            docs = NEW_DOCS if i % 2 == 0 else DOCS
            build_index(
                write_jsonl(tmp / f"v{i}.jsonl", docs),
                tiny_encoder,
                tmp / "indexes",
                "live",
                progress=False,
                keep_builds=3,
            )
            r = client.post("/admin/reload", headers={"authorization": "Bearer admin-key-0123456789"})
            assert r.status_code == 200
            builds.add(r.json()["build_id"])
        time.sleep(0.2)
        stop.set()
        for w in workers:
            w.join(30)
    assert len(builds) == 4 and len(statuses) > 20
    assert set(statuses) == {200}


@pytest.mark.slow
def test_sighup_reloads_a_running_server(reloadable, tiny_model: str, tiny_encoder) -> None:
    import signal

    from simsearch.index.build import build_index
    from tests.server import running_server

    _, tmp = reloadable
    with running_server(tiny_model, tmp / "indexes", "live") as server:
        before = httpx.get(f"{server.url}/ready").json()["build_id"]
        build_index(write_jsonl(tmp / "new.jsonl", NEW_DOCS), tiny_encoder, tmp / "indexes", "live", progress=False)
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while httpx.get(f"{server.url}/ready").json()["build_id"] == before:
            assert time.monotonic() < deadline, "SIGHUP did not reload"
            time.sleep(0.2)
        assert httpx.post(f"{server.url}/search", json={"query": "tea"}).json()["hits"][0]["id"].startswith("n")
