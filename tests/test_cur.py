"""CUR: exact recovery of low-rank matrices, resumable scoring, budget accounting, and the search modes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from simsearch.cur import CURApproximation, adaptive_cur, matrix_key, rows_done, score_matrix, select_anchor_items


def low_rank(n_queries: int, n_items: int, rank: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_queries, rank)) @ rng.normal(size=(rank, n_items))


def test_rank_r_matrix_is_recovered_exactly_from_its_anchors() -> None:
    M = low_rank(70, 300, rank=5)
    R = M[:20]  # anchor queries
    cur = CURApproximation(n_anchors=8, selection="random", rcond=1e-3, random_state=1).fit(R)  # k_i 8 >= rank 5
    assert cur.rank_ == 5 and cur.E_.shape == (8, 300) and cur.U_.shape == (8, 20)
    np.testing.assert_array_equal(cur.anchors_, select_anchor_items(300, 8, "random", seed=1))
    for q in range(20, 70):  # queries never seen while fitting
        np.testing.assert_allclose(cur.approximate(M[q, cur.anchors_]), M[q], rtol=1e-3, atol=1e-3)


def test_cur_follows_the_estimator_contract_and_gives_new_items_their_column() -> None:
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    M = low_rank(30, 120, rank=3, seed=9)
    est = CURApproximation(n_anchors=6, selection="random", rcond=1e-6, random_state=2)
    assert clone(est).get_params() == est.get_params()  # __init__ only stores parameters
    with pytest.raises(NotFittedError):
        est.approximate(np.zeros(6))
    est.fit(M[:, :100])  # the last 20 items arrive later
    assert not hasattr(clone(est), "E_")
    # a new item's column from its anchor-query scores alone: U . R[:, j], no refit
    new = est.columns(M[:, 100:])
    refit = CURApproximation(n_anchors=6, rcond=1e-6).fit(M, anchors=est.anchors_)
    np.testing.assert_allclose(new, refit.E_[:, 100:], rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match=r"expected scores of shape \(30, m\)"):
        est.columns(np.zeros((29, 2)))


def test_approximate_top_k_equals_exact_top_k_on_low_rank() -> None:
    M = low_rank(60, 500, rank=4, seed=2)
    cur = CURApproximation(n_anchors=10, selection="random", rcond=1e-3, random_state=3).fit(M[:30])
    for q in range(30, 60):
        approx = cur.approximate(M[q, cur.anchors_])
        assert list(np.argsort(-approx)[:10]) == list(np.argsort(-M[q])[:10])


def test_adaptive_cur_finds_the_exact_top_within_budget() -> None:
    M = low_rank(40, 400, rank=3, seed=4)
    R, q = M[:20], M[25]
    calls: list[int] = []

    def score_items(positions: np.ndarray) -> np.ndarray:
        calls.append(len(positions))
        return q[positions]

    positions, scores = adaptive_cur(score_items, R, np.array([1, 50, 99]), budget=30, rounds=3)
    assert sum(calls) == 30 == len(positions)
    assert set(np.argsort(-q)[:10]) <= set(positions.tolist())
    assert list(scores) == sorted(scores, reverse=True)


def test_kmeans_anchor_selection_is_distinct_and_seeded() -> None:
    emb = np.random.default_rng(0).normal(size=(200, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    a = select_anchor_items(200, 12, "kmeans", seed=5, embeddings=emb)
    assert len(set(a.tolist())) == 12 and list(a) == sorted(a)
    np.testing.assert_array_equal(a, select_anchor_items(200, 12, "kmeans", seed=5, embeddings=emb))
    with pytest.raises(ValueError, match="k_i must be between 1 and the 200 items"):
        select_anchor_items(200, 201, "random", seed=0)


class CountingScorer:
    def __init__(self) -> None:
        self.pairs = 0

    def __call__(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.pairs += len(pairs)
        return np.array([len(a) * 0.5 - len(b) + (hash(a + b) % 7) for a, b in pairs], dtype=np.float32)


def test_interrupted_then_resumed_score_matrix_equals_uninterrupted(tmp_path: Path) -> None:
    queries = [f"query {i}" for i in range(6)]
    items = [f"item text {j}" * (j % 3 + 1) for j in range(25)]
    full = score_matrix(
        CountingScorer(), queries, items, tmp_path / "a" / "R.npy", model_key="m", chunk=7, progress=False
    )
    scorer = CountingScorer()
    with pytest.raises(InterruptedError, match="stopped after 2 of 6 rows"):
        score_matrix(
            scorer, queries, items, tmp_path / "b" / "R.npy", model_key="m", chunk=7, progress=False, stop_after_rows=2
        )
    assert scorer.pairs == 2 * 25
    path = tmp_path / "b" / "R.npy"
    assert rows_done(path, matrix_key("m", queries, items)) == 2
    # the record of other inputs does not count as done for these (bench.cur's "pairs scored this run")
    assert rows_done(path, matrix_key("m", queries, items[:10])) == 0
    assert rows_done(path, matrix_key("other", queries, items)) == 0
    resumed = score_matrix(scorer, queries, items, tmp_path / "b" / "R.npy", model_key="m", chunk=7, progress=False)
    assert scorer.pairs == 6 * 25  # finished rows were not scored again
    np.testing.assert_array_equal(resumed, full)
    # a checkpoint made for another model is not reused
    other = CountingScorer()
    score_matrix(other, queries, items, tmp_path / "b" / "R.npy", model_key="other", progress=False)
    assert other.pairs == 6 * 25


# ---- the fit job, the search modes, the service ----------------------------------------------------------


def test_fit_job_publishes_a_new_build_with_cur(cur_index: Path, tiny_cross: str) -> None:
    from simsearch.index.open import open_index

    index = open_index(cur_index)
    info = index.manifest.cur
    assert info is not None and (info.k_q, info.k_i, info.selection) == (6, 3, "kmeans")
    assert info.calls == 6 * 8 and info.cross_encoder.path == tiny_cross
    assert index.cur is not None and index.cur.U.shape == (3, 6) and len(index.cur.anchor_queries) == 6
    assert index.cur.ann.count() == 8  # one column of E per document
    assert {"cur/U.npy", "cur/R.npy", "cur/anchors.npy", "cur/index.faiss"} <= set(index.manifest.files)
    assert len(list(cur_index.parent.glob("c@*"))) == 2  # the build without CUR is kept for rollback


@pytest.fixture(scope="module")
def cur_client(cur_index: Path, tiny_model: str, tiny_cross: str) -> Iterator[TestClient]:
    from service.app import create_app
    from simsearch.settings import Settings

    settings = Settings(
        bi_model=tiny_model, cross_model=tiny_cross, index_dir=cur_index.parent, index_name="c", max_rerank=5
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_rerank_mode_rescores_dense_candidates(cur_client: TestClient, tiny_cross: str) -> None:
    from simsearch.models.cross_encoder import CrossScorer
    from tests.conftest import DOCS

    body = cur_client.post("/search", json={"query": "hot drinks", "k": 3, "mode": "rerank", "k_r": 5}).json()
    assert body["mode"] == "rerank" and body["cross_encoder_calls"] == 5 and len(body["hits"]) == 3
    dense = cur_client.post("/search", json={"query": "hot drinks", "k": 5}).json()
    assert dense["cross_encoder_calls"] == 0
    content = {d["_id"]: f"{d['title']} {d['text']}".strip() for d in DOCS}
    candidates = [h["id"] for h in dense["hits"]]
    exact = CrossScorer.load(tiny_cross).score([("hot drinks", content[i]) for i in candidates])
    expected = [candidates[i] for i in np.argsort(-exact, kind="stable")[:3]]
    assert [h["id"] for h in body["hits"]] == expected
    assert [h["score"] for h in body["hits"]] == pytest.approx(sorted(exact, reverse=True)[:3], abs=1e-5)


def test_cur_mode_spends_k_i_plus_k_r_calls(cur_client: TestClient) -> None:
    body = cur_client.post("/search", json={"query": "hot drinks", "k": 4, "mode": "cur", "k_r": 2}).json()
    assert body["mode"] == "cur" and body["cross_encoder_calls"] == 3 + 2 and len(body["hits"]) == 4
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    # a budget larger than the corpus scores every item once, never more
    body = cur_client.post("/search", json={"query": "hot drinks", "k": 8, "mode": "cur", "k_r": 5}).json()
    assert body["cross_encoder_calls"] == 8 and len({h["id"] for h in body["hits"]}) == 8


def test_k_r_over_the_limit(cur_client: TestClient) -> None:
    r = cur_client.post("/search", json={"query": "x", "mode": "rerank", "k_r": 6})
    assert (
        r.status_code == 422 and "body.k_r: 6 candidates; the limit is 5 (SIMSEARCH_MAX_RERANK)" in r.json()["message"]
    )


def test_mode_errors(settings_for, built_index: Path, tiny_cross: str) -> None:
    from service.app import create_app

    with TestClient(create_app(settings_for(cross_model=tiny_cross))) as client:
        r = client.post("/search", json={"query": "x", "mode": "cur"})
        assert r.status_code == 422
        assert (
            "body.mode: index 'tiny' has no CUR arrays: fit them with `python -m training.fit_cur"
            in r.json()["message"]
        )
        assert client.post("/search", json={"query": "x", "mode": "fast"}).status_code == 422
    with TestClient(create_app(settings_for())) as client:
        r = client.post("/search", json={"query": "x", "mode": "rerank"})
        assert r.status_code == 422 and "no cross-encoder is loaded: set SIMSEARCH_CROSS_MODEL" in r.json()["message"]


def test_cur_fitted_with_another_cross_encoder_is_refused(
    cur_index: Path, tiny_model: str, tiny_cross: str, tmp_path: Path
) -> None:
    from service.app import create_app
    from simsearch.serving.runtime import StartupError
    from simsearch.settings import Settings

    other = tmp_path / "other-ce"
    shutil.copytree(tiny_cross, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "classifier_dropout": 0.5}))
    settings = Settings(bi_model=tiny_model, cross_model=str(other), index_dir=cur_index.parent, index_name="c")
    with (
        pytest.raises(StartupError, match="CUR arrays fitted with cross-encoder .* set SIMSEARCH_CROSS_MODEL"),
        TestClient(create_app(settings)),
    ):
        pass


def test_validated_rcond_prefers_the_cut_off_that_generalises() -> None:
    rng = np.random.default_rng(7)
    signal = low_rank(40, 400, rank=2, seed=7) * 5
    M = signal + rng.normal(scale=0.3, size=signal.shape)  # rank 2 plus noise, like cross-encoder scores
    cur = CURApproximation(n_anchors=30, selection="random", rcond="cv", random_state=0).fit(M)
    scores = cur.cv_scores_
    assert scores[cur.rcond_] == max(scores.values()) and scores[cur.rcond_] > scores[1e-6]
    assert cur.rank_ < 30  # the noise directions are cut


def test_service_and_jobs_run_the_same_pipeline(cur_index: Path, tiny_model: str, tiny_cross: str) -> None:
    """Every mode answers the same through the service's batched engine and through inline calls."""
    import asyncio

    from simsearch.search import SearchParams, run_sync
    from simsearch.serving.engine import Engine
    from simsearch.serving.runtime import load_runtime
    from simsearch.settings import Settings

    rt = load_runtime(Settings(bi_model=tiny_model, cross_model=tiny_cross, index_dir=cur_index.parent, index_name="c"))
    queries = ["hot drinks", "animals at home", "weather"]
    for mode in ("dense", "rerank", "cur"):
        params = SearchParams(k=4, mode=mode, k_r=3)  # type: ignore[arg-type]
        direct = [run_sync(rt.pipeline.search(rt.view, rt.direct_models(), q, params)) for q in queries]

        async def served(params: SearchParams = params) -> list:
            engine = await Engine.around(rt)
            try:
                col = engine.get(None)
                return [o.result for o in await asyncio.gather(*(col.search(q, params) for q in queries))]
            finally:
                await engine.pool.stop()  # the runtime stays open for the next mode

        batched = asyncio.run(served())
        for a, b in zip(direct, batched, strict=True):
            assert [h.id for h in a.hits] == [h.id for h in b.hits], mode
            assert [h.score for h in a.hits] == pytest.approx([h.score for h in b.hits], abs=1e-5)
            assert a.cross_encoder_calls == b.cross_encoder_calls
    rt.close()


def test_evaluate_job_measures_every_mode(cur_index: Path, tiny_model: str, tiny_cross: str, tmp_path: Path) -> None:
    from tests.conftest import DOCS, write_jsonl
    from training.evaluate import main as evaluate

    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "hot drinks"}, {"_id": "q2", "text": "pets"}])
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td6\t1\nq1\td7\t1\nq2\td1\t1\n")
    reports = {}
    for mode in ("dense", "rerank", "cur"):
        out = tmp_path / f"{mode}.json"
        args = ["--data", str(beir), "--name", "c", "--index-dir", str(cur_index.parent), "--model", tiny_model]
        args += ["--cross", tiny_cross, "--mode", mode, "--k-r", "4", "--out", str(out), "--no-progress"]
        assert evaluate(args) == 0
        reports[mode] = json.loads(out.read_text())
    assert reports["dense"]["cross_encoder_calls_per_query"] == 0
    assert reports["rerank"]["cross_encoder_calls_per_query"] == 4  # k_r
    assert reports["cur"]["cross_encoder_calls_per_query"] == 3 + 4  # k_i + k_r
    for mode, r in reports.items():
        assert r["mode"] == mode and r["queries"] == 2 and r["ms_per_query"] > 0 and 0 <= r["ndcg@10"] <= 1
    assert reports["dense"]["recall@100"] == 1.0 and len(DOCS) == 8  # every document is in the dense top 100
    assert reports["dense"]["collection_fusion"]["chosen_on"] == "default"  # says how hybrid's fusion was chosen


def test_cur_over_a_build_split_into_passages(tmp_path: Path, tiny_encoder, tiny_cross: str) -> None:
    """A build split into passages: E has a column per passage (as the cross-encoder reads it: title, then
    the passage), ``cur`` scores a document by its best passage and returns k distinct documents, an anchor
    passage stands for its document, and compaction keeps the columns and anchors on their passages."""
    from simsearch.api.spec import CollectionSpec, PassageSpec
    from simsearch.collection.compact import compact
    from simsearch.collection.embedded import EmbeddedCollection
    from simsearch.collection.view import top_documents
    from simsearch.data.corpus import Document
    from simsearch.index.build import build_index
    from simsearch.models.cross_encoder import CrossScorer
    from simsearch.search import DirectModels, SearchParams, SearchPipeline, run_sync
    from simsearch.text.passages import PassageSplitter, passage_input
    from tests.conftest import DOCS, write_jsonl
    from tests.test_passages import long_text
    from training.fit_cur import main as fit

    rows = [{"_id": f"report-{i}", "title": f"Report {i}", "text": long_text(6, seed=i)} for i in range(5)]
    rows += [{"_id": d["_id"], "title": d["title"], "text": d["text"]} for d in DOCS]
    root = tmp_path / "ix"
    spec = CollectionSpec(passages=PassageSpec(tokens=16, overlap=0))
    build_index(write_jsonl(tmp_path / "c.jsonl", rows), tiny_encoder, root, "p", progress=False, spec=spec)
    args = ["--index", "p", "--index-dir", str(root), "--cross", tiny_cross, "--k-q", "6", "--k-i", "4"]
    assert fit([*args, "--work-dir", str(tmp_path / "work")]) == 0

    def check(c: EmbeddedCollection) -> tuple[np.ndarray, list[Document]]:
        index, view = c.index, c.view()
        cur, info, spans = index.cur, index.manifest.cur, index.passages
        assert cur is not None and info is not None and info.items == "passages" and spans is not None
        assert cur.ann.count() == len(spans) > index.manifest.count  # a column per passage
        docs = index.store.get(list(range(index.manifest.count)))
        for a, text in zip(cur.anchors, cur.anchor_texts, strict=True):
            if a >= 0:  # each anchor is still the passage its text was scored as
                d, s, e = spans[a]
                assert text == passage_input(docs[d], int(s), int(e))
        keys, _ = view.cur_anchors()
        assert keys == [int(spans[a, 0]) if a >= 0 else -1 for a in cur.anchors]
        c_query = np.linspace(1.0, -0.5, info.k_i).astype(np.float32)
        E = cur.ann.index.reconstruct_n(0, cur.ann.count()).T  # type: ignore[attr-defined]
        alive = np.isin(spans[:, 0], view.state.dead_base, invert=True)
        expected = top_documents(spans[alive, 0], (c_query @ E)[alive], 4)
        got = view.cur(c_query, 4)
        assert [k for k, _ in got] == [k for k, _ in expected] and len({k for k, _ in got}) == 4
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-4)
        return spans, docs

    c = EmbeddedCollection.open(root / "p")
    spans, docs = check(c)
    assert c.index.manifest.cur.calls == 6 * len(spans)  # type: ignore[union-attr]
    cross = CrossScorer.load(tiny_cross)
    result = run_sync(
        SearchPipeline().search(
            c.view(), DirectModels(tiny_encoder, cross), "volcanic ash", SearchParams(mode="cur", k=5, k_r=3)
        )
    )
    assert len({h.id for h in result.hits}) == len(result.hits) == 5 and result.cross_encoder_calls == 4 + 3
    # compaction: a new long document (new passages get their columns), the first anchor's document deleted
    splitter = PassageSplitter(tiny_encoder.model.tokenizer, 16, 0)
    new = Document(id="new", title="Late report", text=long_text(8, seed=9))
    passages = splitter.split([new])
    c.upsert([new], tiny_encoder.encode(passages.inputs), passages.spans)
    first_anchor_doc = docs[int(spans[c.index.cur.anchors[0], 0])].id  # type: ignore[union-attr]
    c.delete([first_anchor_doc])
    before = c.index.manifest.cur.calls  # type: ignore[union-attr]
    assert compact(c, cross_score=cross.score, cross_sha256=cross.sha256) is not None
    c.close()
    again = EmbeddedCollection.open(root / "p")
    check(again)
    assert again.index.cur.anchors[0] == -1  # type: ignore[union-attr]  # its passage is gone
    assert again.index.manifest.cur.calls == before + 6 * len(passages.inputs)  # type: ignore[union-attr]
    again.close()
