"""What a hostile or unlucky client could do to the service, each with the fix's test (docs/security.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from simsearch.settings import Settings
from tests.conftest import DOCS, write_jsonl
from tests.server import running_server

READ_KEY = "read-key-01234567890"
ADMIN_KEY = "admin-key-0123456789"


@pytest.fixture(scope="module")
def client(tiny_model: str, built_index: Path):
    settings = Settings(bi_model=tiny_model, index_dir=built_index.parent, index_name=built_index.name)
    with TestClient(create_app(settings)) as c:
        yield c


# ---- 1. invalid list items do not amplify into huge answers -----------------------------------------------


def test_a_megabyte_of_bad_items_gets_a_small_fast_422(client: TestClient) -> None:
    body = json.dumps({"source": "s", "targets": [1] * 330_000}).encode()
    assert 990_000 < len(body) < 1_048_576  # a megabyte, within the body limit
    started = time.perf_counter()
    r = client.post("/similarity", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and len(r.content) < 5_000, len(r.content)
    assert "body.targets" in r.json()["message"] and time.perf_counter() - started < 5
    r = client.post("/similarity", json={"source": "s", "targets": [1] * 4000})
    assert r.status_code == 422 and len(r.content) < 20_000
    assert r.json()["message"].endswith("; and 3980 more errors") and r.json()["more_errors"] == 3980
    assert len(r.json()["detail"]) == 20


# ---- 2. idle sockets neither lock everyone out nor stay for ever ---------------------------------------


@pytest.mark.slow
def test_health_answers_while_a_thousand_idle_sockets_are_open(tiny_model: str, built_index: Path) -> None:
    env = {"SIMSEARCH_HEADER_TIMEOUT_S": "2", "SIMSEARCH_LOG_LEVEL": "warning"}
    with running_server(tiny_model, built_index.parent, built_index.name, **env) as server:
        idle = []
        for _ in range(1000):
            s = socket.create_connection(("127.0.0.1", server.port))
            idle.append(s)
        started = time.perf_counter()
        r = httpx.get(f"{server.url}/health", timeout=10)
        assert r.status_code == 200 and time.perf_counter() - started < 2
        r = httpx.post(f"{server.url}/search", json={"query": "tea"}, timeout=10)
        assert r.status_code == 200  # the idle sockets are not requests: no 503
        time.sleep(3)  # past the header deadline: the server has closed them
        closed = 0
        for s in idle:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
            s.close()
        assert closed == len(idle)


# ---- 3, 4. work is bounded, split, dropped when the client has gone, and never done before admission ----


def test_a_long_query_is_cut_once_for_the_cross_encoder(tiny_cross: str) -> None:
    from simsearch.models.cross_encoder import CrossScorer

    cross = CrossScorer.load(tiny_cross)
    query = "a very long query about cats and dogs " * 400  # ~15,000 characters
    clipped = cross.clip(query)
    assert len(clipped) < len(query) and query.startswith(clipped)
    tokens = cross.model.tokenizer(clipped, add_special_tokens=False)["input_ids"]
    assert len(tokens) <= cross.max_seq_length - 4
    docs = [d["text"] for d in DOCS]
    # the same scores as the whole query, whose extra tokens the model would cut anyway
    full = cross.score([(query, d) for d in docs])
    cut = cross.score([(clipped, d) for d in docs])
    assert cut.tolist() == pytest.approx(full.tolist(), abs=1e-5)
    assert cross.clip("short") == "short"


def test_a_request_refused_by_the_queue_costs_no_tokenising(settings_for, monkeypatch: pytest.MonkeyPatch) -> None:
    from simsearch.models.bi_encoder import BiEncoder
    from simsearch.serving.batching import QueueFullError

    calls: list[int] = []
    monkeypatch.setattr(
        BiEncoder, "truncated", lambda self, texts, **kw: calls.append(len(texts)) or [False] * len(texts)
    )
    with TestClient(create_app(settings_for())) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]

        async def full(*args: object, **kwargs: object) -> None:
            raise QueueFullError("bi-encoder", retry_after=1)

        monkeypatch.setattr(engine.pool.batchers["default"], "_submit", full)  # submit and submit_then
        long_text = "word " * 1500  # longer than the model's window, within the character limit
        assert c.post("/search", json={"query": long_text}).status_code == 429
        r = c.post("/similarity", json={"source": long_text, "targets": [long_text] * 3})
        assert r.status_code == 429 and calls == []


def test_a_client_that_disconnects_cancels_its_request() -> None:
    from service.metrics import Metrics
    from service.middleware import RequestContext

    cancelled = asyncio.Event()

    async def slow_app(scope, receive, send) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def run() -> None:
        sent = {"body": False}

        async def receive():
            if not sent["body"]:
                sent["body"] = True
                return {"type": "http.request", "body": b"{}", "more_body": False}
            await asyncio.sleep(0.1)
            return {"type": "http.disconnect"}

        async def send(message) -> None:
            raise AssertionError("nothing should be sent to a client that left")

        mw = RequestContext(slow_app, metrics=Metrics(), max_body_bytes=1024, body_timeout_s=5)
        scope = {"type": "http", "method": "POST", "path": "/search", "headers": []}
        await asyncio.wait_for(mw(scope, receive, send), 5)
        assert cancelled.is_set()
        text = __import__("prometheus_client").generate_latest(mw.metrics.registry).decode()
        assert 'status="499"' in text  # counted as the client's, not as a server error

    asyncio.run(run())


# ---- 5, 6. keys: no empty ones, one scheme for every scope -------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SIMSEARCH_API_KEYS": ","}, "empty key"),
        ({"SIMSEARCH_API_KEYS": "good-key-0123456789,"}, "empty key"),
        ({"SIMSEARCH_API_KEYS": "short"}, "at least 16 characters"),
        ({"SIMSEARCH_WRITE_KEYS": "x"}, "at least 16 characters"),
        ({"SIMSEARCH_ADMIN_KEY": "secret"}, "at least 16 characters"),
    ],
)
def test_empty_or_short_keys_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, env: dict, message: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=message):
        Settings()


def test_an_empty_admin_key_is_no_key(settings_for) -> None:
    with TestClient(create_app(settings_for(admin_key=""))) as c:
        r = c.post("/admin/reload", headers={"authorization": "Bearer "})
        assert r.status_code == 403 and "admin endpoints are off" in r.json()["message"]


def test_admin_works_beside_api_keys_through_one_header(settings_for) -> None:
    with TestClient(create_app(settings_for(api_keys=READ_KEY, admin_key=ADMIN_KEY))) as c:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        assert c.post("/admin/reload", headers=admin).status_code == 200  # no need to make one key both
        assert c.post("/search", json={"query": "tea"}, headers=admin).status_code == 200
        r = c.post("/admin/reload", headers={"authorization": f"Bearer {READ_KEY}"})
        assert r.status_code == 403 and "not an admin key" in r.json()["message"]
        two = [("authorization", f"Bearer {READ_KEY}"), ("authorization", f"Bearer {ADMIN_KEY}")]
        r = c.post("/admin/reload", headers=two)
        assert r.status_code == 400 and "one Authorization header" in r.json()["message"]


# ---- 7. a reload never closes an index under a running request -----------------------------------------


def test_a_slow_request_outlives_a_reload(tiny_model: str, tmp_path: Path, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    root = tmp_path / "indexes"
    build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), tiny_encoder, root, "live", progress=False)
    settings = Settings(
        bi_model=tiny_model, index_dir=root, index_name="live", admin_key=ADMIN_KEY, request_timeout_s=1
    )
    with TestClient(create_app(settings)) as c:
        engine = c.app.state.engine  # type: ignore[attr-defined]
        old = engine.get(None).runtime
        store = old.index.store
        real_get, entered, release = store.get, threading.Event(), threading.Event()

        def held(positions):
            entered.set()
            release.wait(30)
            return real_get(positions)

        store.get = held
        out: dict = {}
        t = threading.Thread(target=lambda: out.setdefault("r", c.post("/search", json={"query": "tea", "k": 2})))
        t.start()
        assert entered.wait(10)
        build_index(write_jsonl(tmp_path / "d.jsonl", DOCS[:4]), tiny_encoder, root, "live", progress=False)
        assert c.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        time.sleep(1 + 5 + 0.5)  # past request_timeout_s + 5: where the old timer closed the index
        assert not old._closed  # still in use
        release.set()
        t.join(10)
        assert out["r"].status_code == 200 and len(out["r"].json()["hits"]) == 2
        assert old._closed  # closed by its last request, not by a timer


# ---- 8. one index's build never touches another's staging folder -----------------------------------------


def test_building_one_index_leaves_another_ones_staging_folder(tmp_path: Path, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    root = tmp_path / "ix"
    other = root / ".tmp-sci-v2@20990101T000000000000Z-aaaaaa"
    other.mkdir(parents=True)
    build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), tiny_encoder, root, "sci", progress=False)
    assert other.is_dir()


def test_rollback_takes_the_build_lock(tmp_path: Path, tiny_encoder) -> None:
    from simsearch.index.build import build_index
    from simsearch.index.publish import BuildLockedError, build_lock, rollback

    root = tmp_path / "ix"
    for docs in (DOCS, DOCS[:3]):
        build_index(write_jsonl(tmp_path / "c.jsonl", docs), tiny_encoder, root, "r", progress=False)
    with build_lock(root, "r"), pytest.raises(BuildLockedError):
        rollback(root, "r")
    assert rollback(root, "r").is_dir()


# ---- 9. logs cannot be forged ---------------------------------------------------------------------------


def test_text_logs_escape_what_the_client_sent() -> None:
    from service.logs import JsonFormatter, TextFormatter

    record = logging.makeLogRecord({"msg": "GET %s 200", "args": ("/search\nFAKE level=error\u2028x\x85",)})
    line = TextFormatter("%(message)s").format(record)
    assert "\n" not in line and "\u2028" not in line and "\x85" not in line and "\\x0a" in line
    js = JsonFormatter().format(record)
    assert "\u2028" not in js and "\x85" not in js and json.loads(js)["msg"].endswith("\u2028x\x85 200")


def test_a_request_id_with_a_trailing_newline_is_replaced() -> None:
    from service.middleware import REQUEST_ID

    assert REQUEST_ID.fullmatch("abc-123") and not REQUEST_ID.fullmatch("abc\n")
    assert not REQUEST_ID.fullmatch("abc 123")


# ---- 10. the smaller ones ---------------------------------------------------------------------------------


def test_an_unhandled_error_still_carries_the_request_id(settings_for) -> None:
    app = create_app(settings_for())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom", headers={"x-request-id": "trace-1"})
        assert r.status_code == 500 and r.headers["x-request-id"] == "trace-1"
        assert "internal error" in r.json()["message"]


def test_ready_names_the_model_and_index_without_their_paths(client: TestClient, tiny_model: str) -> None:
    body = client.get("/ready").json()
    assert body["model"] == Path(tiny_model).name and "/" not in json.dumps({k: body[k] for k in ("model", "index")})


def test_a_reload_whose_build_vanished_is_refused_not_a_500(tiny_model: str, tmp_path: Path, tiny_encoder) -> None:
    from simsearch.index.build import build_index

    root = tmp_path / "indexes"
    build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), tiny_encoder, root, "v", progress=False)
    settings = Settings(
        bi_model=tiny_model, index_dir=root, index_name="v", admin_key=ADMIN_KEY, verify_checksums=False
    )
    with TestClient(create_app(settings)) as c:
        link = build_index(write_jsonl(tmp_path / "d.jsonl", DOCS[:3]), tiny_encoder, root, "v", progress=False)
        os.remove(link.resolve() / "docs.sqlite")  # pruned or lost under the service
        r = c.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 409 and "still serving" in r.json()["message"]
        assert c.post("/search", json={"query": "tea"}).status_code == 200
    shutil.rmtree(root)


def test_no_telemetry_even_with_a_global_tracer_provider(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's OpenTelemetry hooks trace every request once a global provider is configured (an installed
    SDK, FASTAPI_OTEL_AUTO_CONFIGURE); the service turns them off, so such a provider is never asked."""
    from fastapi.telemetry import _asgi
    from opentelemetry import trace

    asked: list[str] = []

    class Provider(trace.TracerProvider):  # a configured provider: neither the API's proxy nor its no-op
        def get_tracer(self, *args: object, **kwargs: object) -> trace.Tracer:
            asked.append("tracer")
            return trace.NoOpTracer()

    monkeypatch.setattr(_asgi.trace, "get_tracer_provider", lambda: Provider())
    assert client.post("/search", json={"query": "a cat", "k": 2}).status_code == 200
    assert asked == []
    # the same app without the setting would have asked: the test can tell the difference
    from fastapi import FastAPI

    bare = FastAPI()
    bare.get("/x")(lambda: {"ok": True})
    with TestClient(bare) as other:
        other.get("/x")
    assert asked
