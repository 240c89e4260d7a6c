"""Document writes over HTTP: what each answer says, who may write, bad batches that change nothing,
filters on /search, durability across kill -9, and no failed request while writing and compacting."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from simsearch.settings import Settings
from tests.conftest import DOCS, write_jsonl
from tests.server import running_server

WRITE_KEY = "write-key-0123456789"
READ_KEY = "read-key-01234567890"
ADMIN_KEY = "admin-key-0123456789"
W = {"authorization": f"Bearer {WRITE_KEY}"}


@pytest.fixture
def live_index(tmp_path: Path, built_index: Path) -> Path:
    """A private copy of the tiny index (writes change the collection)."""
    root = tmp_path / "indexes"
    root.mkdir()
    real = built_index.resolve()
    shutil.copytree(real, root / real.name)
    os.symlink(real.name, root / "tiny")
    return root


@pytest.fixture
def client(live_index: Path, tiny_model: str) -> Iterator[TestClient]:
    settings = Settings(
        bi_model=tiny_model,
        index_dir=live_index,
        index_name="tiny",
        write_keys=WRITE_KEY,
        api_keys=READ_KEY,
        admin_key=ADMIN_KEY,
        max_write_batch=5,
        max_text_chars=200,
        compact_after=0,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def doc(i: str, text: str, **meta: object) -> dict:
    return {"id": i, "text": text, "title": "", "metadata": meta or None}


def test_writes_answer_what_they_did_and_searches_see_them_at_once(client: TestClient) -> None:
    r = client.put("/documents", json={"documents": [doc("n1", "a fresh note about volcanoes", year=2024)]}, headers=W)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["inserted"] == ["n1"] and body["replaced"] == [] and body["sequence"] == 1
    r = client.put(
        "/documents", json={"documents": [doc("d1", "cats rewritten", lang="fr"), doc("n2", "x")]}, headers=W
    )
    assert r.json()["replaced"] == ["d1"] and r.json()["inserted"] == ["n2"] and r.json()["sequence"] == 2
    got = client.get("/documents/d1", headers=W).json()
    assert got == {"id": "d1", "title": "", "text": "cats rewritten", "metadata": {"lang": "fr"}}
    hits = client.post("/search", json={"query": "volcanoes", "k": 3, "mode": "lexical"}, headers=W).json()["hits"]
    assert hits[0]["id"] == "n1"  # read-your-writes
    r = client.request("DELETE", "/documents", json={"ids": ["n1", "ghost"]}, headers=W)
    assert r.json()["deleted"] == ["n1"] and r.json()["not_found"] == ["ghost"] and r.json()["sequence"] == 3
    assert client.get("/documents/n1", headers=W).status_code == 404
    for mode in ("dense", "lexical", "hybrid"):
        found = client.post("/search", json={"query": "volcanoes", "k": 10, "mode": mode}, headers=W).json()["hits"]
        assert "n1" not in [h["id"] for h in found], mode
    info = client.get("/indexes", headers=W).json()["live"]
    assert info["sequence"] == 3 and info["documents"] == len(DOCS) + 1


def test_writes_need_a_write_key(client: TestClient) -> None:
    body = {"documents": [doc("n1", "x")]}
    assert client.put("/documents", json=body).status_code == 401
    r = client.put("/documents", json=body, headers={"authorization": f"Bearer {READ_KEY}"})
    assert r.status_code == 403 and "may read but not write" in r.json()["message"]
    assert (
        client.post("/search", json={"query": "x"}, headers={"authorization": f"Bearer {READ_KEY}"}).status_code == 200
    )
    assert client.post("/search", json={"query": "x"}, headers=W).status_code == 200  # a write key also reads
    assert client.get("/documents/n1", headers=W).status_code == 404  # nothing was written
    r = client.post("/admin/compact", headers=W)
    assert r.status_code == 403 and "not an admin key" in r.json()["message"]


def test_writes_are_off_without_write_keys(tiny_model: str, live_index: Path) -> None:
    settings = Settings(bi_model=tiny_model, index_dir=live_index, index_name="tiny")
    with TestClient(create_app(settings)) as c:
        r = c.put("/documents", json={"documents": [doc("n1", "x")]})
        assert r.status_code == 403 and "SIMSEARCH_WRITE_KEYS" in r.json()["message"]
        assert c.post("/admin/compact").status_code == 403
    with TestClient(create_app(settings.model_copy(update={"anonymous_writes": True}))) as c:
        assert c.put("/documents", json={"documents": [doc("n1", "x")]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"documents": [doc("ok", "fine"), doc("", "no id")]}, "body.documents.1.id"),
        ({"documents": [doc("ok", "fine"), doc("b", "   ")]}, "body.documents.1.text"),
        ({"documents": [doc("a", "one"), doc("a", "two")]}, "body.documents.1.id"),
        ({"documents": [doc("ok", "fine"), {"id": "m", "text": "t", "metadata": [1]}]}, "body.documents.1.metadata"),
        ({"documents": [doc(f"x{i}", "t") for i in range(6)]}, "body.documents"),
        ({"documents": [doc("ok", "fine"), {"id": "t", "text": "t", "tags": []}]}, "body.documents.1.tags"),
        ({"documents": [doc("ok", "y" * 300)]}, "body.documents.0.text"),
        ({"documents": []}, "body.documents"),
        ({"ids": ["x"]}, "body.documents"),
    ],
)
def test_a_bad_item_fails_the_whole_batch(client: TestClient, body: dict, field: str) -> None:
    r = client.put("/documents", json=body, headers=W)
    assert r.status_code == 422 and field in r.json()["message"], r.text
    assert client.get("/documents/ok", headers=W).status_code == 404  # the good items were not written either
    assert client.get("/indexes", headers=W).json()["live"]["sequence"] == 0


@pytest.mark.parametrize(
    ("flt", "where"),
    [
        ({"year": {"$near": 1}}, "body.filter.year.$near: unknown operator"),
        ({"lang": {"$in": "en"}}, "body.filter.lang.$in: expected a non-empty list"),
        ({"$or": {"a": 1}}, "body.filter.$or: expected a non-empty list"),
        ([1], "body.filter"),
    ],
)
def test_bad_filters_are_422_naming_the_part(client: TestClient, flt: object, where: str) -> None:
    r = client.post("/search", json={"query": "cats", "filter": flt}, headers=W)
    assert r.status_code == 422 and where in r.json()["message"], r.text


def test_filters_narrow_every_mode(client: TestClient) -> None:
    docs = [doc(f"y{i}", f"animals and pets number {i}", year=2000 + i, lang="en" if i % 2 else "de") for i in range(5)]
    assert client.put("/documents", json={"documents": docs}, headers=W).status_code == 200
    for mode in ("dense", "lexical", "hybrid"):
        body = {"query": "animals pets", "k": 10, "mode": mode, "filter": {"year": {"$gte": 2002}, "lang": "en"}}
        hits = client.post("/search", json=body, headers=W).json()["hits"]
        assert hits and {h["id"] for h in hits} <= {"y3"}, (mode, hits)
    none = client.post("/search", json={"query": "x", "filter": {"year": 1}}, headers=W).json()
    assert none["hits"] == []


def test_compaction_over_http_keeps_every_write(client: TestClient) -> None:
    client.put("/documents", json={"documents": [doc("c1", "compacted note")]}, headers=W)
    client.request("DELETE", "/documents", json={"ids": ["d2"]}, headers=W)
    r = client.post("/admin/compact", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    assert r.json()["sequence"] == 2 and r.json()["build_id"] != r.json()["previous_build_id"]
    assert client.get("/documents/c1", headers=W).json()["text"] == "compacted note"
    assert client.get("/documents/d2", headers=W).status_code == 404
    info = client.get("/indexes", headers=W).json()
    assert info["manifest"]["count"] == len(DOCS) and info["manifest"]["sequence"] == 2
    assert info["live"] == {"sequence": 2, "documents": len(DOCS), "build_documents": len(DOCS), "uncompacted": 0}


def test_no_failures_while_writing_and_compacting(client: TestClient) -> None:
    """Searches run without pause while one thread writes batches and another compacts: no error, and
    every acknowledged write is found afterwards."""
    errors: list[str] = []
    acked: list[str] = []
    stop = threading.Event()

    def searcher() -> None:
        while not stop.is_set():
            for mode in ("dense", "lexical", "hybrid"):
                r = client.post("/search", json={"query": "note", "k": 5, "mode": mode}, headers=W)
                if r.status_code != 200:
                    errors.append(f"search {r.status_code} {r.text}")

    def writer() -> None:
        for i in range(12):
            batch = [doc(f"w{i}-{j}", f"note {i} {j}") for j in range(3)]
            r = client.put("/documents", json={"documents": batch}, headers=W)
            if r.status_code != 200:
                errors.append(f"write {r.status_code} {r.text}")
            else:
                acked.extend(d["id"] for d in batch)

    threads = [threading.Thread(target=searcher) for _ in range(2)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for _ in range(2):
        r = client.post("/admin/compact", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        if r.status_code not in (200, 409):
            errors.append(f"compact {r.status_code} {r.text}")
    threads[-1].join()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[:5]
    assert len(acked) == 36
    missing = [i for i in acked if client.get(f"/documents/{i}", headers=W).status_code != 200]
    assert not missing


@pytest.mark.slow
def test_acknowledged_writes_survive_kill_9(tiny_model: str, live_index: Path) -> None:
    env = {"SIMSEARCH_WRITE_KEYS": WRITE_KEY, "SIMSEARCH_LOG_LEVEL": "warning"}
    acked = []
    with running_server(tiny_model, live_index, "tiny", **env) as server:
        for i in range(5):
            batch = [doc(f"k{i}-{j}", f"durable note {i} {j}") for j in range(4)]
            r = httpx.put(f"{server.url}/documents", json={"documents": batch}, headers=W, timeout=30)
            assert r.status_code == 200
            acked += [d["id"] for d in batch]
        r = httpx.request("DELETE", f"{server.url}/documents", json={"ids": ["d3", "k0-0"]}, headers=W, timeout=30)
        assert r.status_code == 200
        os.kill(server.proc.pid, signal.SIGKILL)  # right after the answer: no shutdown, no flush
        server.proc.wait(10)
    time.sleep(0.2)
    with running_server(tiny_model, live_index, "tiny", **env) as server:
        for doc_id in acked[1:]:
            assert httpx.get(f"{server.url}/documents/{doc_id}", timeout=10).status_code == 200, doc_id
        for gone in ("d3", "k0-0"):
            assert httpx.get(f"{server.url}/documents/{gone}", timeout=10).status_code == 404
        hits = httpx.post(f"{server.url}/search", json={"query": "durable", "k": 30, "mode": "lexical"}, timeout=10)
        assert len(hits.json()["hits"]) == len(acked) - 1


def test_offline_job_writes_through_the_same_log(
    client: TestClient, live_index: Path, tiny_model: str, tmp_path: Path
) -> None:
    from training.update_index import main as update

    corpus = write_jsonl(
        tmp_path / "more.jsonl", [{"_id": "j1", "text": "from a file"}, {"_id": "d4", "text": "new rain"}]
    )
    ids = tmp_path / "gone.txt"
    ids.write_text("d5\nnot-there\n")
    args = ["--name", "tiny", "--index-dir", str(live_index), "--model", tiny_model]
    assert update([*args, "--upsert", str(corpus), "--delete", str(ids)]) == 0
    deadline = time.monotonic() + 10  # the service picks other writers' batches up within refresh_s
    while client.get("/documents/j1", headers=W).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.get("/documents/d4", headers=W).json()["text"] == "new rain"
    assert client.get("/documents/d5", headers=W).status_code == 404


def test_a_read_only_replica_follows_the_writer(client: TestClient, live_index: Path, tiny_model: str) -> None:
    """A replica never writes: it refuses writes with 409, picks the writer's batches up within refresh_s,
    and swaps to the build the writer's compaction publishes (its own would be pruned)."""
    replica_settings = Settings(
        bi_model=tiny_model,
        index_dir=live_index,
        index_name="tiny",
        read_only=True,
        anonymous_writes=True,  # even with writes allowed by the keys, a replica has no log to write
        refresh_s=0.2,
    )
    with TestClient(create_app(replica_settings)) as replica:
        r = replica.put("/documents", json={"documents": [doc("r1", "x")]})
        assert r.status_code == 409 and "read-only here" in r.json()["message"]
        client.put("/documents", json={"documents": [doc("f1", "followed by the replica")]}, headers=W)

        def wait_for(check) -> None:
            deadline = time.monotonic() + 15
            while not check():
                assert time.monotonic() < deadline
                time.sleep(0.2)

        wait_for(lambda: replica.get("/documents/f1").status_code == 200)
        before = replica.get("/ready").json()["build_id"]
        assert client.post("/admin/compact", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        wait_for(lambda: replica.get("/ready").json()["build_id"] != before)
        assert replica.get("/documents/f1").json()["text"] == "followed by the replica"
        assert replica.get("/documents/r1").status_code == 404
