"""Collections as resources over HTTP, driven through the Python client: create (201, 200, 409), list,
describe, write, search, delete; names, limits, models, keys limited to collections; what opening refuses;
collections other processes make; the counts /ready and /metrics show without asking a store."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from simsearch.client import Client, SimsearchError
from tests.conftest import DOCS, write_jsonl

WRITE_KEY, ADMIN_KEY, READ_KEY = "write-key-0123456789abcdef", "admin-key-0123456789abcdef", "read-key-0123456789ab"
LIMITED_KEY = "limited-key-0123456789abc"
# ids as people use them: 8 to 512 bytes, non-ASCII, with the characters URLs and paths care about
IDS = ["doc/readme.md", "ünïcödé-文档-" + "x" * 20, "a?b#c%d e&f", "z" * 170 + "é" * 170, "12345678"]


@pytest.fixture
def root(tmp_path: Path, built_index: Path) -> Path:
    """A private copy of the tiny index's root (the tests create and delete collections in it)."""
    target = tmp_path / "indexes"
    shutil.copytree(built_index.parent, target, symlinks=True)
    return target


@pytest.fixture
def server(root: Path, settings_for: Any) -> Iterator[tuple[TestClient, Any]]:
    settings = settings_for(index_dir=root, write_keys=WRITE_KEY, admin_key=ADMIN_KEY, max_collections=4, refresh_s=0.2)
    with TestClient(create_app(settings)) as http:
        yield http, settings


def client(http: TestClient, key: str | None = WRITE_KEY) -> Client:
    """The Python client over the app (the test client's transport: no sockets)."""
    return Client(key=key, http=http)


def test_create_fill_search_describe_and_delete_a_collection(server) -> None:
    http, _ = server
    c = client(http)
    made = c.create_collection("notes", model="default")
    assert made.created and made.spec.model == "default" and made.spec.index == "auto"
    assert not c.create_collection("notes", model="default").created  # the same again: 200
    r = http.put("/collections/notes", json={"model": "default"}, headers={"authorization": f"Bearer {WRITE_KEY}"})
    assert r.status_code == 200
    with pytest.raises(SimsearchError) as conflict:
        c.create_collection("notes", model="minilm", index="flat")
    assert conflict.value.status == 409 and "model" in conflict.value.message and "index" in conflict.value.message
    listed = {s.name: s for s in c.list_collections()}
    assert listed["notes"].documents == 0 and listed["notes"].state == "ready" and "tiny" in listed
    docs = [
        {"id": i, "text": f"note {n} about {w}", "metadata": {"n": n}}
        for n, (i, w) in enumerate(zip(IDS, ["ab", "cd", "ef", "gh", "ij"], strict=True))
    ]
    written = c.upsert("notes", docs)
    assert written.inserted == IDS and written.sequence == 1
    for doc_id in IDS:  # every id the write API takes reads back, whatever it holds
        assert c.get("notes", doc_id).id == doc_id
    for mode in ("dense", "lexical", "hybrid"):
        hits = c.search("notes", "note about gh", k=5, mode=mode).hits
        assert {h.id for h in hits} <= set(IDS) and hits, mode
    assert c.search("notes", "gh", k=1, mode="lexical").hits[0].id == IDS[3]
    assert c.search(None, "cats", k=1).collection == "tiny"  # the old routes: the default collection
    info = c.get_collection("notes")
    assert info.spec == made.spec and info.live.documents == 5 and info.live.build_documents == 0
    assert info.models["bi"]["name"] == "default" and "/" not in info.models["bi"]["folder"]
    assert "/" not in info.manifest["model"]["path"]  # names and hashes, never the server's paths
    with pytest.raises(SimsearchError) as denied:
        c.delete_collection("notes")  # a write key may create, only an admin key deletes
    assert denied.value.status == 403
    assert client(http, ADMIN_KEY).delete_collection("notes").deleted
    with pytest.raises(SimsearchError) as default:
        client(http, ADMIN_KEY).delete_collection("tiny")
    assert default.value.status == 409 and "SIMSEARCH_INDEX_NAME" in default.value.message
    with pytest.raises(SimsearchError) as gone:
        c.search("notes", "note")
    assert gone.value.status == 404 and "no collection named 'notes'" in gone.value.message
    assert "notes" not in {s.name for s in c.list_collections()}
    assert c.create_collection("notes").created  # the name is free again, and the collection empty
    assert c.get_collection("notes").live.documents == 0


def test_names_limits_and_models_are_refused_with_the_field(server) -> None:
    http, _ = server
    c = client(http)
    key = {"authorization": f"Bearer {WRITE_KEY}"}
    for raw in ("%2E%2E", "a%2Fb", "..%2F..%2Fetc", "C:", "a.b", "x" * 65, "%20"):
        r = http.put(f"/collections/{raw}", json={}, headers=key)
        assert r.status_code == 422 and "path.name" in r.json()["message"], (raw, r.text)
        r = http.post(f"/collections/{raw}/search", json={"query": "x"}, headers=key)
        assert r.status_code == 422, (raw, r.text)
    with pytest.raises(SimsearchError) as unknown:
        c.create_collection("m", model="nope")
    assert unknown.value.status == 422 and unknown.value.message.startswith("body.model: no bi-encoder named 'nope'")
    with pytest.raises(SimsearchError) as unknown_cross:
        c.create_collection("m", cross="nope")
    assert unknown_cross.value.status == 422 and "body.cross" in unknown_cross.value.message
    r = http.put("/collections/m", json={"model": "default", "analyzer": "x"}, headers=key)
    assert r.status_code == 422 and "analyzer" in r.json()["message"]
    for name in ("a", "b", "c"):  # with the default collection: the limit of 4
        c.create_collection(name)
    with pytest.raises(SimsearchError) as full:
        c.create_collection("d")
    assert full.value.status == 409 and "SIMSEARCH_MAX_COLLECTIONS=4" in full.value.message


def test_two_clients_creating_one_name_get_one_201(server) -> None:
    http, _ = server
    key = {"authorization": f"Bearer {WRITE_KEY}"}
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: http.put("/collections/race", json={}, headers=key).status_code, range(8)))
    assert sorted(codes) == [200] * 7 + [201]
    with ThreadPoolExecutor(2) as pool:
        specs = [{"index": "flat"}, {"index": "hnsw"}]
        codes = list(pool.map(lambda s: http.put("/collections/race2", json=s, headers=key).status_code, specs))
    assert sorted(codes) == [201, 409]


def test_a_key_limited_to_collections_sees_and_touches_only_those(root: Path, settings_for: Any) -> None:
    scoped = [{"key": LIMITED_KEY, "scopes": ["read", "write"], "collections": ["mine"]}]
    settings = settings_for(index_dir=root, write_keys=WRITE_KEY, admin_key=ADMIN_KEY, scoped_keys=scoped)
    with TestClient(create_app(settings)) as http:
        admin, limited = client(http, ADMIN_KEY), client(http, LIMITED_KEY)
        admin.create_collection("theirs")
        limited.create_collection("mine")  # its own name: it may
        assert [s.name for s in limited.list_collections()] == ["mine"]
        assert {s.name for s in admin.list_collections()} == {"mine", "theirs", "tiny"}
        limited.upsert("mine", [{"id": "m1", "text": "mine only"}])
        assert limited.search("mine", "mine", mode="lexical").hits[0].id == "m1"
        for call in (
            lambda: limited.search("theirs", "x"),
            lambda: limited.upsert("theirs", [{"id": "t", "text": "x"}]),
            lambda: limited.get_collection("theirs"),
            lambda: limited.search(None, "x"),  # the default collection is another collection
            lambda: limited.create_collection("other"),
            lambda: limited.delete_collection("mine"),  # no admin scope
        ):
            with pytest.raises(SimsearchError) as refused:
                call()
            assert refused.value.status == 403, refused.value.message
        r = http.post("/collections/mine/search", json={"query": "x"})  # no key at all: reads need one now
        assert r.status_code == 401


def test_prefixes_come_from_the_models_entry_for_documents_and_queries(
    root: Path, settings_for: Any, tiny_model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model registered with E5's prefixes gets "passage: " before every document and "query: " before
    every query of every collection that names it, and nothing else can set them."""
    from simsearch.models.bi_encoder import BiEncoder

    seen: list[str] = []
    real = BiEncoder.encode

    def spy(self: BiEncoder, texts: Any, **kw: Any) -> Any:
        seen.extend(texts)
        return real(self, texts, **kw)

    monkeypatch.setattr(BiEncoder, "encode", spy)
    models = {"e5ish": {"path": tiny_model, "query_prefix": "query: ", "document_prefix": "passage: "}}
    settings = settings_for(index_dir=root, anonymous_writes=True, models=models)
    with TestClient(create_app(settings)) as http:
        c = client(http, None)
        c.create_collection("e", model="e5ish")
        seen.clear()
        c.upsert("e", [{"id": "p1", "title": "Tea", "text": "hot leaves"}])
        c.search("e", "a drink")
        assert seen == ["passage: Tea hot leaves", "query: a drink"]
        seen.clear()
        c.search("tiny", "a drink")  # the default model has no prefixes
        assert seen == ["a drink"]


def test_opening_refuses_other_weights_and_the_others_still_serve(
    root: Path, settings_for: Any, tiny_model: str, tiny_cross: str, tmp_path: Path
) -> None:
    """A collection made with model `a` whose registry entry now points at other weights is listed as
    unavailable with the reason (both hashes); the default collection serves on."""
    settings = settings_for(index_dir=root, anonymous_writes=True, models={"a": tiny_model})
    with TestClient(create_app(settings)) as http:
        client(http, None).create_collection("made-with-a", model="a")
    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    (other / "extra.json").write_text("{}")  # another file: another hash
    moved = settings_for(index_dir=root, anonymous_writes=True, models={"a": str(other)})
    with TestClient(create_app(moved)) as http:
        c = client(http, None)
        state = {s.name: s for s in c.list_collections()}["made-with-a"]
        assert state.state == "unavailable" and "sha256" in (state.reason or "") and "rebuild" in (state.reason or "")
        with pytest.raises(SimsearchError) as refused:
            c.search("made-with-a", "x")
        assert refused.value.status == 404 and "cannot be opened" in refused.value.message
        assert c.search(None, "cats").hits
        assert http.get("/ready").json()["ready"] is True


def test_a_collection_built_offline_appears_without_a_restart(
    server, root: Path, tiny_encoder: Any, tmp_path: Path
) -> None:
    from simsearch.index.build import build_index

    http, _ = server
    c = client(http)
    build_index(write_jsonl(tmp_path / "c.jsonl", DOCS[:3]), tiny_encoder, root, "offline", progress=False)
    r = http.post("/admin/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert r.status_code == 200, r.text
    assert {s.name: s.documents for s in c.list_collections()}["offline"] == 3
    build_index(write_jsonl(tmp_path / "d.jsonl", DOCS[:2]), tiny_encoder, root, "later", progress=False)
    deadline = threading.Event()
    for _ in range(100):  # the background loop looks every few refresh rounds (0.2 s each here)
        if "later" in {s.name for s in c.list_collections()}:
            break
        deadline.wait(0.1)
    assert c.get_collection("later").live.documents == 2


def test_ready_and_metrics_answer_from_kept_counts(server, monkeypatch: pytest.MonkeyPatch) -> None:
    """/ready and /metrics never ask a store (a Milvus count is a network call): they show the counts the
    engine keeps after each write, per collection, with the build's count and the live one named apart."""
    from simsearch.collection.view import CollectionView

    http, _ = server
    c = client(http)
    c.create_collection("counted")
    c.upsert("counted", [{"id": f"c{i}", "text": f"text {i}"} for i in range(3)])
    c.search("counted", "text", mode="lexical")

    def refuse(self: Any) -> int:
        raise AssertionError("a store was asked for its count on the event loop")

    monkeypatch.setattr(CollectionView, "count", property(refuse))
    ready = http.get("/ready").json()
    assert ready["ready"] and ready["documents"] == len(DOCS) and ready["build_documents"] == len(DOCS)
    assert {s["name"]: s["documents"] for s in ready["collections"]} == {"tiny": len(DOCS), "counted": 3}
    text = http.get("/metrics").text
    assert 'simsearch_collection_documents{collection="counted"} 3.0' in text
    assert 'simsearch_collection_build_documents{collection="counted"} 0.0' in text
    assert 'simsearch_collection_uncompacted{collection="counted"} 3.0' in text
    assert 'simsearch_collection_searches_total{collection="counted",mode="lexical"} 1.0' in text
    assert 'simsearch_collection_writes_total{collection="counted",op="upsert"} 3.0' in text
    assert 'simsearch_collection_search_seconds_count{collection="counted"} 1.0' in text


def test_every_route_declares_who_may_call_it(server) -> None:
    """Authorisation is a dependency of each route: a route without one is open, and the open ones are
    exactly these (a new route cannot be open by accident)."""
    from fastapi.routing import APIRoute

    http, _ = server
    open_routes = set()
    routes = list(http.app.routes)  # type: ignore[attr-defined]
    while routes:
        route = routes.pop()
        if hasattr(route, "original_router"):  # an included router (FastAPI keeps it as one route)
            routes.extend(route.original_router.routes)
            continue
        if not isinstance(route, APIRoute):
            continue
        names = {getattr(d.call, "__name__", "") for d in route.dependant.dependencies}
        if not names & {"allow_read", "allow_write", "allow_admin", "caller"}:
            open_routes.add(route.path)
    assert open_routes == {"/health", "/ready", "/", "/docs", "/collections/{rest:path}"}


def test_the_client_raises_one_error_type_worded_as_the_service(server) -> None:
    """A request the schemas refuse fails before it is sent, as the same SimsearchError (422) and in the
    same words as the service's answer to it."""
    http, _ = server
    c = client(http)
    for call, expected in (
        (lambda: c.search("tiny", "x", k=500), "body.k: Input should be less than or equal to 100"),
        (lambda: c.upsert("tiny", [{"id": " ", "text": "x"}]), "body.documents.0.id: must be a non-empty id"),
        (lambda: c.create_collection("x", index="nope"), "body.index: Input should be"),
    ):
        with pytest.raises(SimsearchError) as local:
            call()
        assert local.value.status == 422 and local.value.message.startswith(expected), local.value.message
    served = http.post("/search", json={"query": "x", "k": 500}).json()["message"]
    assert served == "body.k: Input should be less than or equal to 100"


def test_a_fixed_fusion_in_the_specification_is_the_one_hybrid_uses(server) -> None:
    http, _ = server
    c = client(http)
    c.create_collection("rrf-fixed", fusion={"method": "rrf", "rrf_k": 60})
    c.upsert("rrf-fixed", [{"id": f"x{i}", "text": f"tea and coffee {i} " + "cats " * i} for i in range(6)])
    hits = c.search("rrf-fixed", "tea cats", k=6, mode="hybrid").hits
    assert all(h.score <= 2 / 61 + 1e-9 for h in hits)  # RRF scores: at most 1/61 from each list
    own = c.search("rrf-fixed", "tea cats", k=6, mode="hybrid", fusion={"method": "convex", "alpha": 0.5}).hits
    assert any(h.score > 2 / 61 for h in own)  # a request's own fusion still wins


def test_a_scoped_key_is_told_why_and_may_use_what_reads_no_collection(root: Path, settings_for: Any) -> None:
    scoped = [{"key": LIMITED_KEY, "scopes": ["read", "write"], "collections": ["mine"]}]
    settings = settings_for(index_dir=root, write_keys=WRITE_KEY, admin_key=ADMIN_KEY, scoped_keys=scoped)
    with TestClient(create_app(settings)) as http:
        limited = client(http, LIMITED_KEY)
        with pytest.raises(SimsearchError) as refused:
            limited.create_collection("other")
        assert refused.value.status == 403 and refused.value.message == "this key may not write collection 'other'"
        assert limited.similarity([("a cat", "a cat")]).scores[0] == pytest.approx(1.0, abs=1e-5)
        assert {m.name for m in limited.models().models} >= {"default", "minilm"}
        assert http.get("/metrics", headers={"authorization": f"Bearer {LIMITED_KEY}"}).status_code == 403


def test_one_folder_under_two_names_is_one_model_and_one_queue(server) -> None:
    """``default`` and ``minilm`` name the same packaged folder here only when SIMSEARCH_BI_MODEL is left
    alone; with the tiny model, register it twice: collections of either name share one copy and one batcher."""
    http, settings = server
    engine = http.app.state.engine  # type: ignore[attr-defined]
    registry = engine.registry
    from simsearch.models.registry import ModelEntry

    registry.entries["twin"] = ModelEntry(path=settings.bi_model)
    registry._locks["twin"] = __import__("threading").Lock()
    c = client(http)
    c.create_collection("of-twin", model="twin")
    c.upsert("of-twin", [{"id": "t", "text": "tea"}])
    assert registry.peek("twin").model is registry.peek("default").model
    assert engine.pool.batchers["twin"] is engine.pool.batchers["default"]


def test_fusion_is_chosen_on_request_without_judgments(server) -> None:
    """POST /collections/{name}/fusion scores the candidates on self-supervised queries from the documents,
    records the choice with its figures (GET shows how it was chosen) and serves with it; with documents too
    short to draw queries from it is a 409 and nothing changes."""
    http, _ = server
    c, admin = client(http), {"authorization": f"Bearer {ADMIN_KEY}"}
    c.create_collection("fitted")
    c.upsert("fitted", [{"id": "one", "text": "A single sentence."}])
    r = http.post("/collections/fitted/fusion", headers=admin)
    assert r.status_code == 409 and "too few documents" in r.json()["message"]
    topics = ["tea", "rain", "cats", "bridges", "frogs", "markets", "volcanoes", "rivers"]
    docs = [
        {
            "id": f"d{i}",
            "text": " ".join(f"The {topics[i % 8]} note {i} says thing {j} about {topics[i % 8]}." for j in range(5)),
        }
        for i in range(60)
    ]
    c.upsert("fitted", docs)
    r = http.post("/collections/fitted/fusion", headers=admin)
    assert r.status_code == 200, r.text
    chosen = r.json()
    assert chosen["chosen_on"].startswith("self-supervised: ") and set(chosen["validation"]) >= {"dense", "rrf"}
    info = c.get_collection("fitted")
    assert info.manifest["fusion"] == chosen and info.live.documents == 61  # the writes are all still there
