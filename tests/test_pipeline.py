"""The search pipeline: every mode against a reference computed by hand, and the calls it makes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from simsearch.ann import create_index
from simsearch.cur import CURApproximation
from simsearch.data.corpus import Document
from simsearch.index.cur_arrays import CurColumns
from simsearch.index.docstore import InMemoryStore
from simsearch.search import DirectModels, IndexView, ModeUnavailableError, SearchParams, SearchPipeline, run_sync

N, DIM = 60, 8


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


rng = np.random.default_rng(0)
VECTORS = unit(rng.normal(size=(N, DIM)))
TEXTS = [f"document {i}" for i in range(N)]
QUERY_VECTOR = unit(rng.normal(size=DIM))
ITEM_WEIGHT = rng.normal(size=N)  # the fake cross-encoder: a fixed score per document


class Encoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        return np.stack([QUERY_VECTOR] * len(texts))


class Scorer:
    def __init__(self) -> None:
        self.pairs = 0

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.pairs += len(pairs)
        return np.array([ITEM_WEIGHT[int(t.split()[1])] for _, t in pairs], dtype=np.float32)


def view(cur: CURApproximation | None = None) -> IndexView:
    ann = create_index("exact", DIM)
    ann.add(VECTORS)
    docs = InMemoryStore([Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)])
    return IndexView("toy", ann, docs, CurColumns.from_estimator(cur) if cur is not None else None)


def search(v: IndexView, models: DirectModels, **params: Any):
    return run_sync(SearchPipeline().search(v, models, "q", SearchParams(**params)))


def test_dense_is_exact_inner_product_search() -> None:
    result = search(view(), DirectModels(Encoder()), k=5)
    expected = np.argsort(-(VECTORS @ QUERY_VECTOR), kind="stable")[:5]
    assert [h.id for h in result.hits] == [f"d{i}" for i in expected]
    assert [h.score for h in result.hits] == pytest.approx((VECTORS @ QUERY_VECTOR)[expected], rel=1e-5)
    assert result.cross_encoder_calls == 0


def test_rerank_orders_the_dense_top_k_r_by_the_cross_encoder() -> None:
    scorer = Scorer()
    result = search(view(), DirectModels(Encoder(), scorer), k=4, mode="rerank", k_r=12)
    dense = np.argsort(-(VECTORS @ QUERY_VECTOR), kind="stable")[:12]
    expected = dense[np.argsort(-ITEM_WEIGHT[dense], kind="stable")][:4]
    assert [h.id for h in result.hits] == [f"d{i}" for i in expected]
    assert [h.score for h in result.hits] == pytest.approx(ITEM_WEIGHT[expected], rel=1e-5)
    assert result.cross_encoder_calls == scorer.pairs == 12


def test_cur_scores_anchors_then_the_best_approximations() -> None:
    R = rng.normal(size=(20, 3)) @ rng.normal(size=(3, N))  # anchor-query scores of rank 3
    cur = CURApproximation(n_anchors=5, selection="random", rcond=1e-6, random_state=0).fit(R)
    scorer = Scorer()
    result = search(view(cur), DirectModels(Encoder(), scorer), k=6, mode="cur", k_r=7)
    anchors = cur.anchors_.tolist()
    approx = cur.approximate(ITEM_WEIGHT[anchors])
    fresh = [int(i) for i in np.argsort(-approx, kind="stable") if int(i) not in anchors][:7]
    pool = anchors + fresh
    expected = [pool[i] for i in np.argsort(-ITEM_WEIGHT[pool], kind="stable")[:6]]
    assert [h.id for h in result.hits] == [f"d{i}" for i in expected]
    assert result.cross_encoder_calls == scorer.pairs == 5 + 7


def test_a_budget_beyond_the_corpus_scores_each_item_once() -> None:
    scorer = Scorer()
    cur = CURApproximation(n_anchors=4, selection="random", rcond=1e-6).fit(rng.normal(size=(10, N)))
    result = search(view(cur), DirectModels(Encoder(), scorer), k=N, mode="cur", k_r=500)
    assert len({h.id for h in result.hits}) == N == scorer.pairs == result.cross_encoder_calls


class Recording(DirectModels):
    """DirectModels that log each call: the trips a search makes to the models and to blocking work."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.log: list[str] = []

    async def encode(self, texts: list[str]) -> np.ndarray:
        self.log.append("encode")
        return await super().encode(texts)

    async def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        self.log.append("score")
        return await super().score(pairs)

    async def blocking(self, fn: Callable[[], Any]) -> Any:
        self.log.append("blocking")
        return await super().blocking(fn)

    async def encode_then(self, texts: list[str], then: Callable[[np.ndarray], Any]) -> Any:
        self.log.append("encode+blocking")  # one model call with the blocking work right after it
        return await super().encode_then(texts, then)


def test_each_mode_makes_each_model_call_once() -> None:
    cur = CURApproximation(n_anchors=4, selection="random", rcond=1e-6).fit(rng.normal(size=(10, N)))
    v = view(cur)
    expected = {
        "dense": ["encode+blocking"],  # the hot path: one model call, retrieval + documents right after it
        "rerank": ["encode", "blocking", "score", "blocking"],
        "cur": ["blocking", "score", "blocking", "score", "blocking"],  # anchors, their scores, candidates...
    }
    for mode, calls in expected.items():
        models = Recording(Encoder(), Scorer())
        search(v, models, k=3, mode=mode, k_r=5)
        assert models.log == calls, mode


def test_modes_that_cannot_run_say_why() -> None:
    pipeline, no_cross = SearchPipeline(), DirectModels(Encoder())
    assert pipeline.unavailable(view(), no_cross, "dense") is None
    assert "SIMSEARCH_CROSS_MODEL" in (pipeline.unavailable(view(), no_cross, "rerank") or "")
    assert "has no CUR arrays" in (pipeline.unavailable(view(), DirectModels(Encoder(), Scorer()), "cur") or "")
    with pytest.raises(ModeUnavailableError, match="no cross-encoder is loaded"):
        search(view(), no_cross, mode="rerank")
    with pytest.raises(ModeUnavailableError, match="fit them with `python -m training.fit_cur --index toy`"):
        search(view(), DirectModels(Encoder(), Scorer()), mode="cur")


def test_the_cur_benchmark_scores_through_the_pipeline() -> None:
    """bench/cur answers the pipeline's cross-encoder calls from the exact matrix: rerank at budget B is then
    the dense top B in the order of the exact scores, as the benchmark's Top-k-Recall assumes."""
    from bench.cur import LookupScorer, corpus_view, pipeline_candidates

    items = TEXTS
    truth = rng.normal(size=(3, N)).astype(np.float32)
    queries = ["q0", "q1", "q2"]
    scorer = LookupScorer(queries, items, truth)
    found, calls = pipeline_candidates(
        corpus_view("toy", items, VECTORS, None), DirectModels(Encoder(), scorer), queries, "rerank", 10, 10
    )
    dense = np.argsort(-(VECTORS @ QUERY_VECTOR), kind="stable")[:10]
    for qi, got in enumerate(found):
        assert got == dense[np.argsort(-truth[qi][dense], kind="stable")].tolist()
    assert calls == 10 and scorer.pairs == 30


def test_rerank_interpolation_arithmetic() -> None:
    from simsearch.search.rescore import interpolate

    first, cross = [0.9, 0.5, 0.1], [-2.0, 4.0, 1.0]  # normalised: 1, .5, 0 and 0, 1, .5
    assert interpolate(first, cross, 1.0) == pytest.approx([0.0, 1.0, 0.5])
    assert interpolate(first, cross, 0.0) == pytest.approx([1.0, 0.5, 0.0])
    assert interpolate(first, cross, 0.25) == pytest.approx([0.75, 0.625, 0.125])


@pytest.mark.parametrize("helpful", [True, False])
def test_rerank_weight_is_measured(tmp_path, helpful: bool) -> None:
    """An oracle cross-encoder is trusted fully; one that inverts the truth is outvoted: every w < 0.5
    keeps the first stage's order there (ties go to the larger w)."""
    from simsearch.evaluation.rerank_fit import fit_rerank_weight
    from tests.conftest import write_jsonl

    dense = np.argsort(-(VECTORS @ QUERY_VECTOR), kind="stable")[:20]
    relevant = dense[:3] if not helpful else dense[np.argsort(-ITEM_WEIGHT[dense])[:3]]
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    write_jsonl(data / "queries.jsonl", [{"_id": "q1", "text": "q"}])
    (data / "qrels" / "train.tsv").write_text("q\td\ts\n" + "".join(f"q1\td{i}\t1\n" for i in relevant))

    class Truthful(Scorer):
        def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            scores = super().score(pairs)
            return scores if helpful else -np.array([VECTORS[int(t.split()[1])] @ QUERY_VECTOR for _, t in pairs])

    found = fit_rerank_weight(
        SearchPipeline(), view(), DirectModels(Encoder(), Truthful()), data, k_r=20, progress=False
    )
    best = max(found["validation"].values())
    assert found["validation"][f"{found['weight']:.1f}"] == best and found["queries"] == 1
    if helpful:
        assert found["weight"] == 1.0 and best == 100.0
    else:
        assert found["weight"] < 0.5 and best == found["validation"]["0.0"] == 100.0
        assert found["validation"]["1.0"] < 50
