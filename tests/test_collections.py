"""One conformance suite for collections: upsert, replace, delete, get, search in every retriever, filter,
compact, reopen; exact NumPy search over the live documents and the per-document filter are the reference.

Every test runs over both backends (``collection`` is parametrized: the embedded build, and the same build
copied into Milvus through milvus-lite in-process) except those of the embedded backend's own mechanisms,
marked ``EMBEDDED_ONLY`` with the reason; tests/test_milvus.py checks what Milvus guarantees instead."""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simsearch.collection.compact import CompactionError, compact
from simsearch.collection.embedded import EmbeddedCollection, ReadOnlyError
from simsearch.collection.filters import Filter
from simsearch.data.corpus import Document
from simsearch.index.build import build_index
from tests.conftest import write_jsonl

DIM = 16
WORDS = [
    *("cat", "dog", "tea", "coffee", "rain", "sun", "market", "stock"),
    *("python", "code", "ball", "goal", "river", "mountain", "bread", "cheese"),
]


class HashEncoder:
    """A stand-in bi-encoder: a fixed unit vector per text (seeded by its hash), thousands a second."""

    path, sha256, dim, max_seq_length, whitening = "hash-encoder", "hash-encoder-v1", DIM, 64, None

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        out = np.stack(
            [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(size=DIM) for t in texts]
        )
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


ENC = HashEncoder()


def make_docs(n: int, seed: int, prefix: str = "b") -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
        meta = {"year": rng.randint(2015, 2024), "lang": rng.choice(["en", "de", "fr"]), "n": i}
        docs.append(Document(id=f"{prefix}{i}", title=rng.choice(WORDS), text=text, metadata=meta))
    return docs


class Reference:
    """What the collection should hold, kept by hand: id -> (document, vector)."""

    def __init__(self, docs: list[Document]) -> None:
        self.docs: dict[str, tuple[Document, np.ndarray]] = {}
        self.upsert(docs)

    def upsert(self, docs: list[Document]) -> None:
        if not docs:
            return
        self.docs.update({d.id: (d, v) for d, v in zip(docs, ENC.encode([d.content() for d in docs]), strict=True)})

    def dense(self, vector: np.ndarray, k: int, flt: Filter | None = None) -> list[tuple[str, float]]:
        live = [(i, v) for i, (d, v) in self.docs.items() if flt is None or flt.matches(d.metadata)]
        scored = sorted(((i, float(v @ vector)) for i, v in live), key=lambda p: -p[1])
        return scored[:k]


def ids(view: Any, ranked: list[tuple[int, float]]) -> list[str]:
    return [d.id for d in view.documents([k for k, _ in ranked])]


def search_ids(view: Any, method: str, *args: Any) -> list[str]:
    """The ids a retriever of one view finds (keys mean something only in the view that made them)."""
    return ids(view, getattr(view, method)(*args))


BACKENDS = ["embedded", "milvus"]
# the embedded backend's own mechanisms: point-in-time views, the log other processes' writes are read
# from, compaction, its filter planner; Milvus reads live (tests/test_milvus.py checks that instead)
EMBEDDED_ONLY = pytest.mark.parametrize("collection", ["embedded"], indirect=True)


@pytest.fixture(scope="module")
def milvus_client(tmp_path_factory: pytest.TempPathFactory):
    """One milvus-lite (the Milvus engine, in-process) for the module; each test gets its own collection."""
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("milvus") / "milvus.db"))
    yield client
    client.close()


@pytest.fixture(params=BACKENDS)
def collection(request: pytest.FixtureRequest, tmp_path: Path):
    docs = make_docs(300, seed=1)
    corpus = write_jsonl(
        tmp_path / "c.jsonl", [{"_id": d.id, "title": d.title, "text": d.text, "metadata": d.metadata} for d in docs]
    )
    build_index(corpus, ENC, tmp_path / "ix", "col", progress=False)  # type: ignore[arg-type]
    c = EmbeddedCollection.open(tmp_path / "ix" / "col")
    if request.param == "milvus":  # the same build, copied the way a deployment moves to Milvus
        from training.to_milvus import copy_to_milvus

        client = request.getfixturevalue("milvus_client")
        name = f"col_{uuid.uuid4().hex[:12]}"
        c, embedded = copy_to_milvus(c, client, name, progress=False), c
        embedded.close()
        yield c, Reference(docs), tmp_path
        for dropped in (name, name + "__simsearch"):
            client.drop_collection(dropped)
        return
    yield c, Reference(docs), tmp_path
    c.close()


def upsert(c: EmbeddedCollection, ref: Reference, docs: list[Document]):
    ref.upsert(docs)
    return c.upsert(docs, ENC.encode([d.content() for d in docs]))


def delete(c: EmbeddedCollection, ref: Reference, doc_ids: list[str]):
    for i in doc_ids:
        ref.docs.pop(i, None)
    return c.delete(doc_ids)


def check_dense(c: EmbeddedCollection, ref: Reference, flt: Filter | None = None, queries: int = 8) -> None:
    view = c.view()
    for q in ENC.encode([f"query {i}" for i in range(queries)]):
        got = view.dense(q, 10, flt)
        expected = ref.dense(q, 10, flt)
        assert ids(view, got) == [i for i, _ in expected]
        # float32 inner products from two engines: relative tolerance, and absolute near zero
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5, atol=1e-6)


def test_upsert_replace_delete_get_and_dense_search(collection) -> None:
    c, ref, _ = collection
    new = make_docs(20, seed=2, prefix="n")
    r = upsert(c, ref, new)
    assert r.inserted == [d.id for d in new] and r.replaced == [] and r.sequence == 1
    changed = [Document(id="b5", text="tea tea tea", title="changed", metadata={"year": 1999})]
    r = upsert(c, ref, [*changed, Document(id="n3", text="replaced again")])
    assert r.replaced == ["b5", "n3"] and r.sequence == 2
    r = delete(c, ref, ["b7", "n4", "absent"])
    assert r.deleted == ["b7", "n4"] and r.not_found == ["absent"] and r.sequence == 3
    view = c.view()
    assert view.get("b5") == changed[0] and view.get("b7") is None and view.get("n4") is None
    assert view.get("n0") == new[0] and view.get("absent") is None
    assert view.count == len(ref.docs) == 300 + 20 - 2
    check_dense(c, ref)
    # the same document written twice leaves one copy
    upsert(c, ref, [Document(id="n9", text="same")])
    upsert(c, ref, [Document(id="n9", text="same")])
    hits = search_ids(c.view(), "dense", ENC.encode(["same"])[0], 50)
    assert hits.count("n9") == 1 and c.view().count == len(ref.docs)


@EMBEDDED_ONLY
def test_a_view_sees_a_batch_entirely_or_not_at_all(collection) -> None:
    c, ref, _ = collection
    before = c.view()
    upsert(c, ref, make_docs(5, seed=3, prefix="x"))
    delete(c, ref, ["b1"])
    assert before.get("x0") is None and before.get("b1") is not None and before.count == 300  # unchanged
    assert c.view().get("x0") is not None and c.view().get("b1") is None


@pytest.mark.parametrize(
    "raw",
    [{"lang": "de"}, {"year": {"$gte": 2022}}, {"n": {"$lt": 3}}, {"$or": [{"lang": "fr"}, {"year": 2015}]}],
)
def test_filtered_dense_equals_exact_filtered_search(collection, raw: dict) -> None:
    c, ref, _ = collection
    upsert(c, ref, make_docs(30, seed=4, prefix="f"))
    delete(c, ref, [f"b{i}" for i in range(0, 300, 7)])
    check_dense(c, ref, Filter.parse(raw))


def test_lexical_sees_writes_at_once_and_never_a_deleted_document(collection) -> None:
    c, ref, _ = collection
    upsert(c, ref, [Document(id="z1", text="zebra quagga okapi", title="")])
    hits = search_ids(c.view(), "lexical", "okapi", 5)
    assert hits == ["z1"]
    target = next(d for d, _ in ref.docs.values() if "river" in d.text.split())
    assert target.id in search_ids(c.view(), "lexical", "river", 300)
    delete(c, ref, [target.id, "z1"])
    assert target.id not in search_ids(c.view(), "lexical", "river", 300)
    assert c.view().lexical("okapi", 5) == []
    # replaced: the old words no longer find it, the new ones do
    upsert(c, ref, [Document(id="b2", text="platypus", title="")])
    assert "b2" in search_ids(c.view(), "lexical", "platypus", 5)
    old_words = set(make_docs(300, seed=1)[2].content().split())
    for w in old_words:
        assert "b2" not in search_ids(c.view(), "lexical", w, 400)
    # filtered lexical: only matching documents
    flt = Filter.parse({"lang": "de"})
    view = c.view()
    found = view.lexical("cat dog tea", 400, flt)
    assert found and all(flt.matches(d.metadata) for d in view.documents([k for k, _ in found]))


@EMBEDDED_ONLY
def test_compaction_keeps_every_answer_and_reopening_replays_the_log(collection) -> None:
    c, ref, tmp = collection
    upsert(c, ref, make_docs(40, seed=5, prefix="c"))
    delete(c, ref, ["b0", "b1", "c2"])
    upsert(c, ref, [Document(id="b3", text="changed text", metadata={"lang": "xx"})])
    seq = c.sequence
    # reopen before compaction: the log is replayed
    c2 = EmbeddedCollection.open(tmp / "ix" / "col")
    assert c2.sequence == seq and c2.view().count == len(ref.docs)
    check_dense(c2, ref)
    c2.close()
    link = compact(c)
    assert link is not None
    c3 = EmbeddedCollection.open(link)
    m = c3.index.manifest
    assert m.sequence == seq and m.count == len(ref.docs) and m.compacted_from is not None
    assert c3.uncompacted() == 0 and c3.view().count == len(ref.docs)
    check_dense(c3, ref)
    check_dense(c3, ref, Filter.parse({"lang": "xx"}))
    assert ids(c3.view(), c3.view().lexical("changed", 3))[0] == "b3"
    # writes after the compaction land on the new build
    r = upsert(c3, ref, [Document(id="after", text="after compaction")])
    assert r.sequence == seq + 1
    check_dense(c3, ref)
    assert compact(c3) is not None
    with pytest.raises(CompactionError, match="no longer points at build"):  # c3's base is not published now
        compact(c3)
    c3.close()
    c4 = EmbeddedCollection.open(link)
    assert compact(c4) is None  # nothing left to fold
    check_dense(c4, ref)
    c4.close()


@EMBEDDED_ONLY
def test_another_process_writes_are_picked_up_by_refresh(collection) -> None:
    c, ref, tmp = collection
    other = EmbeddedCollection.open(tmp / "ix" / "col")  # a second writer on the same log (an offline job)
    upsert(other, ref, [Document(id="o1", text="from the job")])
    assert c.view().get("o1") is None
    assert c.refresh() == 1 and c.view().get("o1") is not None
    r = upsert(c, ref, [Document(id="o2", text="from the service")])
    assert r.sequence == 2  # sequence numbers are shared
    assert other.refresh() == 1 and other.view().get("o2") is not None
    other.close()


@EMBEDDED_ONLY
def test_read_only_collections_refuse_and_an_emptied_one_compacts_to_an_empty_build(collection) -> None:
    c, ref, tmp = collection
    replica = EmbeddedCollection.open(tmp / "ix" / "col", writable=False)
    with pytest.raises(ReadOnlyError, match="read-only here"):
        replica.upsert([Document(id="r", text="x")], ENC.encode(["x"]))
    with pytest.raises(ReadOnlyError):
        compact(replica)
    replica.close()
    delete(c, ref, [d for d in list(ref.docs)])
    assert compact(c) is not None  # every document deleted: an empty build, which writes fill again
    emptied = EmbeddedCollection.open(tmp / "ix" / "col")
    assert emptied.index.manifest.count == 0 and emptied.view().count == 0
    assert emptied.view().dense(ENC.encode(["x"])[0], 5) == [] and emptied.view().lexical("cat", 5) == []
    upsert(emptied, ref, [Document(id="again", text="cat and dog")])
    assert search_ids(emptied.view(), "lexical", "cat", 5) == ["again"]
    emptied.close()
    with pytest.raises(ValueError, match="vector of shape"):
        c.upsert([Document(id="bad", text="x")], np.zeros((1, DIM + 1), dtype=np.float32))
    assert c.view().get("bad") is None  # nothing of the refused batch was written


def test_filtered_ann_keeps_recall_at_every_selectivity(tmp_path: Path) -> None:
    """HNSW with an ID selector and a raised effort, or an exact scan when few pass: recall@10 against
    exact filtered search stays at or above 0.95 down to a selectivity of 0.5 %."""
    from simsearch.collection import view as view_module

    n = 6000
    docs = [Document(id=str(i), text=f"doc {i}", metadata={"r": i % 200}) for i in range(n)]
    corpus = write_jsonl(tmp_path / "big.jsonl", [{"_id": d.id, "text": d.text, "metadata": d.metadata} for d in docs])
    build_index(corpus, ENC, tmp_path / "ix", "big", params={"factory": "HNSW16"}, progress=False)  # type: ignore[arg-type]
    c = EmbeddedCollection.open(tmp_path / "ix" / "big")
    assert c.index.manifest.index.params["factory"] == "HNSW16"
    ref = Reference(docs)
    queries = ENC.encode([f"q{i}" for i in range(30)])
    for limit in (view_module.EXACT_SCAN_MAX, 0):  # the planner's two paths, both measured
        view_module.EXACT_SCAN_MAX = limit
        for kept in (100, 20, 2, 1):  # selectivity 50 %, 10 %, 1 %, 0.5 %
            flt = Filter.parse({"r": {"$lt": kept}})
            found = [set(search_ids(c.view(), "dense", q, 10, flt)) for q in queries]
            truth = [{i for i, _ in ref.dense(q, 10, flt)} for q in queries]
            recall = np.mean([len(f & t) / len(t) for f, t in zip(found, truth, strict=True)])
            assert recall >= 0.95, (limit, kept, recall)
    view_module.EXACT_SCAN_MAX = 20_000
    c.close()


def test_tuning_queries_are_kept_by_the_build_and_used_again_by_compaction(tmp_path: Path) -> None:
    docs = make_docs(400, seed=2)
    corpus = write_jsonl(tmp_path / "t.jsonl", [{"_id": d.id, "text": d.text} for d in docs])
    queries = [f"what about query {i}" for i in range(50)]
    build_index(corpus, ENC, tmp_path / "ix", "t", params={"factory": "HNSW16"}, progress=False, tuning_queries=queries)  # type: ignore[arg-type]
    c = EmbeddedCollection.open(tmp_path / "ix" / "t")
    m = c.index.manifest
    assert m.index.recall_measured_on == "given queries" and "tuning_queries.npy" in m.files
    kept = np.load(c.index.path / "tuning_queries.npy")
    np.testing.assert_allclose(kept, ENC.encode(queries), rtol=1e-6)
    c.upsert(make_docs(20, seed=3, prefix="n"), ENC.encode([f"new {i}" for i in range(20)]))
    link = compact(c)
    c.close()
    assert link is not None
    c2 = EmbeddedCollection.open(link)
    m2 = c2.index.manifest
    assert m2.index.recall_measured_on == "given queries" and m2.index.params["factory"] == "HNSW16"
    np.testing.assert_array_equal(np.load(c2.index.path / "tuning_queries.npy"), kept)
    assert m2.index.recall_at_10 is not None and m2.index.recall_at_10 >= 0.95
    c2.close()


def realistic_id(rng: random.Random, i: int) -> str:
    """An id as people make them: 8 to 512 bytes of UTF-8, non-ASCII, with '/', '?', '#', '%' and spaces."""
    parts = ["doc/", "é", "文档", "?", "#", "%20", " ", "x", "Ünïcödé-"]
    out, size = f"{i:04d}-", rng.choice([8, 16, 40, 120, 300, 500])
    while len(out.encode()) < size:
        out += rng.choice(parts)
    return out[:170] if len(out.encode()) > 512 else out


class WordCross:
    """A stand-in cross-encoder: the share of the query's words the document holds."""

    path, sha256, max_seq_length = "word-cross", "word-cross-v1", 64

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        return np.array([len(set(q.split()) & set(t.split())) / len(q.split()) for q, t in pairs], dtype=np.float32)

    def clip(self, query: str) -> str:
        return query


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_mode_with_realistic_ids(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Ids of 8 to 512 bytes with non-ASCII and URL characters, in every mode on both backends, written
    through the API's path (an empty collection filled by upserts): dense equals exact search, hybrid is
    the shared fusion of the backend's own two lists, rerank orders by the cross-encoder, filters hold, and
    every id reads back. (On Milvus, hybrid with such ids was an HTTP 500: keys wider than int64.)"""
    from simsearch.api.spec import CollectionSpec
    from simsearch.collection.manager import EmbeddedStore, MilvusStore
    from simsearch.index.manifest import ModelInfo
    from simsearch.search import DirectModels, Fusion, SearchParams, SearchPipeline, run_sync
    from simsearch.search.fusion import fuse

    rng = random.Random(7)
    docs = [
        Document(id=realistic_id(rng, i), title=d.title, text=d.text, metadata=d.metadata)
        for i, d in enumerate(make_docs(120, seed=3))
    ]
    assert min(len(d.id.encode()) for d in docs) >= 8 and max(len(d.id.encode()) for d in docs) <= 512
    assert any(len(d.id.encode()) > 256 for d in docs) and sum(not d.id.isascii() for d in docs) > 100
    model = ModelInfo(name="default", path="hash", sha256=ENC.sha256, dimension=DIM, max_seq_length=64)
    store: Any = EmbeddedStore(tmp_path / "ix")
    if backend == "milvus":
        store = MilvusStore(request.getfixturevalue("milvus_client"), "")
    name = f"real-{uuid.uuid4().hex[:8]}"
    store.create(name, CollectionSpec(), model)
    c = store.open(name, writable=True)
    ref = Reference([])
    for start in range(0, len(docs), 50):
        upsert(c, ref, docs[start : start + 50])
    pipeline, models = SearchPipeline(), DirectModels(ENC, WordCross())
    for query in ("cat dog tea", "stock market python", "river mountain bread"):
        q = ENC.encode([query])[0]
        dense = run_sync(pipeline.search(c.view(), models, query, SearchParams(k=10)))
        assert [h.id for h in dense.hits] == [i for i, _ in ref.dense(q, 10)]
        view = c.view()
        lists = (view.dense(q, 1000), view.lexical(query, 1000))
        for fusion in (Fusion("rrf"), Fusion("convex", alpha=0.6)):
            hybrid = run_sync(pipeline.search(view, models, query, SearchParams(k=10, mode="hybrid", fusion=fusion)))
            assert [h.id for h in hybrid.hits] == ids(view, fuse(*lists, fusion)[:10])
        rerank = run_sync(pipeline.search(c.view(), models, query, SearchParams(k=5, mode="rerank", k_r=40)))
        scores = [h.score for h in rerank.hits]
        assert scores == sorted(scores, reverse=True) and len(rerank.hits) == 5
        flt = Filter.parse({"lang": {"$in": ["de", "fr"]}})
        filtered = run_sync(pipeline.search(c.view(), models, query, SearchParams(k=10, mode="hybrid", filter=flt)))
        assert filtered.hits and all(h.metadata and h.metadata["lang"] in ("de", "fr") for h in filtered.hits)
    for d in docs:
        assert c.view().get(d.id) == d
    c.close()


def test_empty_metadata_comes_back_as_written(collection) -> None:
    """``metadata: {}`` reads back as ``{}`` and no metadata as ``None``, before and after compaction
    (both used to come back as ``None``)."""
    c, ref, tmp = collection
    docs = [Document(id="empty-meta", text="x", metadata={}), Document(id="no-meta", text="y", metadata=None)]
    upsert(c, ref, docs)
    view = c.view()
    assert view.get("empty-meta").metadata == {} and view.get("no-meta").metadata is None
    if c.backend == "embedded":
        compact(c)
        again = EmbeddedCollection.open(tmp / "ix" / "col")
        assert again.view().get("empty-meta").metadata == {} and again.view().get("no-meta").metadata is None
        again.close()
