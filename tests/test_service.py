"""The HTTP API through TestClient: every endpoint, every kind of bad input, every start-up failure."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from simsearch.models.bi_encoder import BiEncoder
from simsearch.serving.runtime import StartupError
from tests.conftest import DOCS, TINY_MAX_SEQ_LENGTH


@pytest.fixture(scope="module")
def client(tiny_model: str, built_index: Path) -> Iterator[TestClient]:
    from simsearch.settings import Settings

    settings = Settings(
        bi_model=tiny_model,
        index_dir=built_index.parent,
        index_name=built_index.name,
        max_pairs=4,
        max_targets=3,
        max_text_chars=200,
    )
    with TestClient(create_app(settings)) as c:
        yield c


def message(response) -> str:
    body = response.json()
    assert set(body) >= {"detail", "message"}
    return body["message"]


# ---- operations -----------------------------------------------------------------------------------------


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_when_loaded(client: TestClient, built_index: Path) -> None:
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["ready"] is True and body["documents"] == len(DOCS) and body["index"] == "tiny"
    assert body["build_id"] == built_index.resolve().name.split("@", 1)[1]


def test_not_ready_before_loading(settings_for) -> None:
    app = create_app(settings_for())  # no lifespan has run: nothing loaded
    c = TestClient(app)
    r = c.get("/ready")
    assert r.status_code == 503 and r.json()["ready"] is False and "not loaded" in r.json()["reason"]
    r = c.post("/search", json={"query": "x"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and "not ready" in message(r)
    assert c.get("/health").status_code == 200


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/search", "/similarity", "/health", "/ready"} <= set(paths)


# ---- search ---------------------------------------------------------------------------------------------


def test_search_returns_k_hits_best_first(client: TestClient, tiny_encoder: BiEncoder) -> None:
    r = client.post("/search", json={"query": "domestic animals", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["index"] == "tiny" and body["took_ms"] > 0 and body["truncated"] is False
    assert len(body["hits"]) == 3
    docs = tiny_encoder.encode([f"{d['title']} {d['text']}".strip() for d in DOCS])
    sims = docs @ tiny_encoder.encode(["domestic animals"])[0]
    expected = [DOCS[i]["_id"] for i in np.argsort(-sims, kind="stable")[:3]]
    assert [h["id"] for h in body["hits"]] == expected
    assert [h["score"] for h in body["hits"]] == pytest.approx(sorted(sims, reverse=True)[:3], rel=1e-5)
    assert set(body["hits"][0]) == {"id", "score", "title", "text", "metadata", "passage"}
    first = body["hits"][0]  # a document of one passage: the passage is its whole text
    assert first["passage"] == {"index": 0, "start": 0, "end": len(first["text"]), "text": first["text"]}


def test_search_default_k_is_capped_by_corpus(client: TestClient) -> None:
    body = client.post("/search", json={"query": "anything"}).json()
    assert len(body["hits"]) == len(DOCS)  # k defaults to 10; the corpus has 8
    assert any(h["metadata"] == {"lang": "en"} for h in body["hits"])


def test_search_reports_truncated_query(client: TestClient) -> None:
    long_query = " ".join(["word"] * (TINY_MAX_SEQ_LENGTH + 5))
    assert client.post("/search", json={"query": long_query}).json()["truncated"] is True


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"query": ""}, "body.query", "must not be empty or blank"),
        ({"query": "   \n"}, "body.query", "must not be empty or blank"),
        ({}, "body.query", "Field required"),
        ({"query": "x", "k": 0}, "body.k", "greater than or equal to 1"),
        ({"query": "x", "k": 101}, "body.k", "less than or equal to 100"),
        ({"query": "x", "k": "10"}, "body.k", "valid integer"),
        ({"query": "x", "k": 2.5}, "body.k", "valid integer"),
        ({"query": 42}, "body.query", "valid string"),
        ({"query": ["a"]}, "body.query", "valid string"),
        ({"query": "x", "top_k": 3}, "body.top_k", "Extra inputs are not permitted"),
        ({"query": "x" * 201}, "body.query", "201 characters; the limit is 200 (SIMSEARCH_MAX_TEXT_CHARS)"),
    ],
)
def test_search_bad_input(client: TestClient, body: dict, field: str, text: str) -> None:
    r = client.post("/search", json=body)
    assert r.status_code == 422
    assert f"{field}: " in message(r) and text in message(r)


def test_search_non_json_body(client: TestClient) -> None:
    r = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in message(r)
    r = client.post("/search", content=b"query=x", headers={"content-type": "text/plain"})
    assert r.status_code == 422 and message(r).startswith("body")
    r = client.post("/search", json=["query", "x"])
    assert r.status_code == 422


# ---- similarity -----------------------------------------------------------------------------------------


def test_similarity_pairs_are_cosines_in_order(client: TestClient, tiny_encoder: BiEncoder) -> None:
    pairs = [["a cat sat", "a dog sat"], ["rain today", "sunny tomorrow"], ["same", "same"]]
    r = client.post("/similarity", json={"pairs": pairs})
    assert r.status_code == 200
    body = r.json()
    a = tiny_encoder.encode([p[0] for p in pairs])
    b = tiny_encoder.encode([p[1] for p in pairs])
    assert body["scores"] == pytest.approx(np.sum(a * b, axis=1).tolist(), abs=1e-5)
    assert body["scores"][2] == pytest.approx(1.0, abs=1e-5)
    assert body["model"] == "bi" and body["truncated"] == []


def test_similarity_source_targets(client: TestClient, tiny_encoder: BiEncoder) -> None:
    targets = ["tea and coffee", "football match", "tea and coffee"]
    body = client.post("/similarity", json={"source": "hot drinks", "targets": targets}).json()
    expected = tiny_encoder.encode(targets) @ tiny_encoder.encode(["hot drinks"])[0]
    assert body["scores"] == pytest.approx(expected.tolist(), abs=1e-5)
    assert body["scores"][0] == body["scores"][2]


def test_similarity_reports_truncated_inputs(client: TestClient) -> None:
    long = " ".join(["word"] * (TINY_MAX_SEQ_LENGTH + 5))
    body = client.post("/similarity", json={"pairs": [["short", "text"], ["short", long]]}).json()
    assert body["truncated"] == [1]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({}, "body", "send `pairs`, or `source` together with `targets`"),
        ({"source": "x"}, "body", "send `pairs`, or `source` together with `targets`"),
        ({"pairs": [["a", "b"]], "source": "x", "targets": ["y"]}, "body", "not both"),
        ({"pairs": []}, "body.pairs", "at least 1 item"),
        ({"pairs": [["a"]]}, "body.pairs.0", "at least 2 items"),
        ({"pairs": [["a", "b", "c"]]}, "body.pairs.0", "at most 2 items"),
        ({"pairs": [["a", " "]]}, "body.pairs.0.1", "must not be empty or blank"),
        ({"pairs": [["a", 1]]}, "body.pairs.0.1", "valid string"),
        ({"pairs": "a,b"}, "body.pairs", "valid list"),
        ({"pairs": [["a", "b"]] * 5}, "body.pairs", "5 pairs; the limit is 4 (SIMSEARCH_MAX_PAIRS)"),
        ({"source": "s", "targets": ["t"] * 4}, "body.targets", "4 targets; the limit is 3 (SIMSEARCH_MAX_TARGETS)"),
        ({"source": "s", "targets": []}, "body.targets", "at least 1 item"),
        ({"source": "s", "targets": ["ok", "x" * 300]}, "body.targets.1", "300 characters"),
        ({"pairs": [["a", "b"]], "model": "tri"}, "body.model", "no model named 'tri' is configured"),
        (
            {"pairs": [["a", "b"]], "model": "cross"},
            "body.model",
            "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL",
        ),
    ],
)
def test_similarity_bad_input(client: TestClient, body: dict, field: str, text: str) -> None:
    r = client.post("/similarity", json=body)
    assert r.status_code == 422, r.text
    assert f"{field}: " in message(r) and text in message(r)


def test_huge_bad_input_is_not_echoed_in_full(client: TestClient) -> None:
    r = client.post("/similarity", json={"pairs": [["a", "b"]] * 5000})
    assert r.status_code == 422 and len(r.content) < 2000


# ---- cross-encoder ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_client(tiny_cross: str, tiny_model: str, built_index: Path) -> Iterator[TestClient]:
    from simsearch.settings import Settings

    settings = Settings(
        bi_model=tiny_model, cross_model=tiny_cross, index_dir=built_index.parent, index_name=built_index.name
    )
    with TestClient(create_app(settings)) as c:
        yield c


def test_similarity_with_the_cross_encoder(cross_client: TestClient, tiny_cross: str) -> None:
    from simsearch.models.cross_encoder import CrossScorer

    scorer = CrossScorer.load(tiny_cross)
    pairs = [["a cat sat", "a dog sat"], ["rain today", "sunny tomorrow"]]
    body = cross_client.post("/similarity", json={"pairs": pairs, "model": "cross"}).json()
    assert body["model"] == "cross"
    assert body["scores"] == pytest.approx(scorer.score([tuple(p) for p in pairs]).tolist(), abs=1e-5)
    bi = cross_client.post("/similarity", json={"pairs": pairs}).json()
    assert bi["model"] == "bi" and bi["scores"] != body["scores"]
    targets = ["a dog sat", "sunny tomorrow"]
    body = cross_client.post("/similarity", json={"source": "a cat sat", "targets": targets, "model": "cross"}).json()
    assert body["scores"] == pytest.approx(scorer.score([("a cat sat", t) for t in targets]).tolist(), abs=1e-5)
    assert cross_client.get("/ready").json()["cross_model"] == Path(tiny_cross).name


def test_cross_truncation_counts_the_pair_together(cross_client: TestClient) -> None:
    half = " ".join(["word"] * (TINY_MAX_SEQ_LENGTH // 2 + 2))  # each text fits alone, the pair does not
    body = cross_client.post("/similarity", json={"pairs": [["a", "b"], [half, half]], "model": "cross"}).json()
    assert body["truncated"] == [1]


def test_startup_refuses_missing_cross_encoder(settings_for, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cross-encoder folder .* does not exist .*SIMSEARCH_CROSS_MODEL"):
        start(settings_for(cross_model=str(tmp_path / "nope")))


# ---- start-up -------------------------------------------------------------------------------------------


def start(settings) -> None:
    with TestClient(create_app(settings)):
        pass


def test_startup_refuses_missing_index(settings_for) -> None:
    with pytest.raises(StartupError, match="does not exist in .*: build it with"):
        start(settings_for(index_name="absent"))


def test_startup_refuses_corrupt_index(settings_for, built_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bad"
    shutil.copytree(built_index.resolve(), copy)
    (copy / "docs.sqlite").write_bytes(b"garbage")
    with pytest.raises(StartupError, match="docs.sqlite is corrupt"):
        start(settings_for(index_dir=tmp_path, index_name="bad"))


def test_startup_refuses_index_of_another_model(settings_for, built_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "other"
    shutil.copytree(built_index.resolve(), copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"]["sha256"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StartupError, match="was built with model .* rebuild the index"):
        start(settings_for(index_dir=tmp_path, index_name="other"))


def test_startup_refuses_missing_model(settings_for, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="model folder .* does not exist .*SIMSEARCH_BI_MODEL"):
        start(settings_for(bi_model=str(tmp_path / "no-model")))


# ---- concurrency ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_blocking_search_leaves_the_event_loop_free(settings_for, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one search is stuck inside the encoder, other requests are still answered."""
    import asyncio
    import threading

    import httpx

    from simsearch.serving.engine import Engine
    from simsearch.serving.runtime import load_runtime

    runtime = load_runtime(settings_for())
    entered, release = threading.Event(), threading.Event()
    real_encode = runtime.encoder.encode

    def held_encode(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real_encode(*args, **kwargs)

    monkeypatch.setattr(runtime.encoder, "encode", held_encode)
    app = create_app(runtime.settings)
    app.state.engine = await Engine.around(runtime)  # ASGITransport does not run the lifespan
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        pending = asyncio.create_task(c.post("/search", json={"query": "tea"}))
        assert await asyncio.to_thread(entered.wait, 30)
        health = await asyncio.wait_for(c.get("/health"), timeout=10)
        assert health.status_code == 200 and not pending.done()
        release.set()
        assert (await pending).status_code == 200
    await app.state.engine.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.parametrize(
    "query", ['"unbalanced', "cats*", "NEAR(cats dogs)", "cats OR", "-dogs", "((", "the of and", "?!", "猫と犬", "a:b"]
)
def test_hostile_lexical_queries_answer(client: TestClient, query: str) -> None:
    for mode in ("lexical", "hybrid"):
        r = client.post("/search", json={"query": query, "k": 5, "mode": mode})
        assert r.status_code == 200, (mode, r.text)
        assert isinstance(r.json()["hits"], list)
    assert client.post("/search", json={"query": "the of and", "mode": "lexical"}).json()["hits"] == []
