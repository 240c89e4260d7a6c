"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from simsearch.evaluation.metrics import evaluate_run, mrr_at_k, ndcg_at_k, recall_at_k


def test_ndcg_graded_hand_computed() -> None:
    rels = {"a": 3, "b": 1, "c": 2}
    ranked = ["b", "x", "a"]
    dcg = 1 / math.log2(2) + 3 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "c", "b"], rels, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], rels, 1) == 0.0


def test_recall_and_mrr() -> None:
    rels = {"a": 1, "b": 1, "z": 0}
    assert recall_at_k(["x", "a", "z"], rels, 100) == 0.5
    assert recall_at_k(["x", "a", "b"], rels, 2) == 0.5
    assert mrr_at_k(["x", "z", "b"], rels, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "z", "b"], rels, 2) == 0.0


def test_evaluate_run_averages_judged_queries_only() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    run = {"q1": ["a"], "q2": ["x", "b"]}
    m = evaluate_run(run, qrels)
    assert m["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert m["recall@100"] == 1.0
    with pytest.raises(ValueError, match="no query has a relevant document"):
        evaluate_run(run, {"q3": {"c": 0}})
