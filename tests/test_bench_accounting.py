"""The benchmarks' own accounting: bench/serve.py's CPU counters, bench/reranker.py's score cache."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.serve import cpu_seconds, where_the_time_goes


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="reads Linux /proc")
def test_cpu_seconds_counts_this_process_and_finished_children() -> None:
    before = cpu_seconds(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:  # burn 0.3 s of this process's CPU
        pass
    subprocess.run(
        [sys.executable, "-c", "import time\nt = time.process_time() + 0.2\nwhile time.process_time() < t: pass"]
    )
    after = cpu_seconds(os.getpid())
    assert 0.25 <= after["server"] - before["server"] < 5
    assert 0.15 <= after["loadgen"] - before["loadgen"] < 5
    assert after["machine_busy"] - before["machine_busy"] >= 0.4


def test_where_the_time_goes() -> None:
    before = {
        "server": 1.0,
        "loadgen": 0.5,
        "machine_busy": 10.0,
        "machine_idle": 5.0,
        "busy": 2.0,
        "texts": 100,
        "batches": 10,
    }
    after = {
        "server": 3.0,
        "loadgen": 0.7,
        "machine_busy": 13.0,
        "machine_idle": 6.0,
        "busy": 5.0,
        "texts": 400,
        "batches": 70,
    }
    out = where_the_time_goes(before, after, wall=2.0, requests=200, streams=2)
    assert out == {
        "server_cpu_ms_per_req": 10.0,
        "loadgen_cpu_ms_per_req": 1.0,
        "machine_idle_share": 0.25,
        "model_busy_share": 0.75,
        "model_ms_per_text": 10.0,
        "mean_batch": 5.0,
    }
    plain = where_the_time_goes(before, after, wall=2.0, requests=200, streams=None)  # another system
    assert set(plain) == {"server_cpu_ms_per_req", "loadgen_cpu_ms_per_req", "machine_idle_share"}


def test_a_point_is_the_median_of_its_rounds() -> None:
    from bench.serve import median_row

    rounds = [
        {"qps": 100.0, "p50_ms": 9.0, "errors": 0, "mean_batch": 1.0},
        {"qps": 80.0, "p50_ms": 12.0, "errors": 2},
        {"qps": 120.0, "p50_ms": 8.0, "errors": 1, "mean_batch": 3.0},
    ]
    row = median_row(rounds)
    assert (row["qps"], row["p50_ms"], row["errors"]) == (100.0, 9.0, 3)
    assert row["mean_batch"] == 2.0  # over the rounds that have it
    assert row["rounds"] == rounds


def test_lone_request_figures_are_paired_by_round() -> None:
    """A round where the whole host was slow moves the system, the naive app and the raw figure together:
    the differences are taken within each round, then the median."""
    from bench.serve import summary

    def point(system: str, p50s: list[float]) -> dict:
        return {"system": system, "qps": 1000 / p50s[0], "rounds": [{"p50_ms": p} for p in p50s]}

    by = {
        ("naive", "/search", 1): point("naive", [20.0, 30.0, 21.0]),
        ("simsearch", "/search", 1): point("simsearch", [9.0, 19.5, 10.0]),
    }
    limits = {"onnx": {"single_query_encode_search_p50_ms_rounds": [8.0, 18.0, 8.5]}}
    out = summary(by, limits, "simsearch", "onnx")  # type: ignore[arg-type]
    assert out["search_c1_p50_minus_naive_ms"] == -11.0  # -11, -10.5, -11
    assert out["search_c1_p50_minus_raw_single_ms"] == 1.5  # 1, 1.5, 1.5
    assert "search_c16_vs_naive" not in out  # not measured: not reported


def test_the_rerankers_benchmark_scores_each_pair_once() -> None:
    """bench.reranker's passes share the cross-encoder's scores: a pair seen before is not scored again,
    and every pair gets its own score back in order."""
    from bench.reranker import CachedScorer

    class Counting:
        def __init__(self) -> None:
            self.seen: list[tuple[str, str]] = []

        def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
            self.seen += pairs
            return np.array([len(q) + 10 * len(d) for q, d in pairs], dtype=np.float32)

    inner = Counting()
    cached = CachedScorer(inner)
    first = cached.score([("q", "a"), ("q", "bb"), ("q", "a")])
    second = cached.score([("q", "bb"), ("qq", "c")])
    assert first.tolist() == [11.0, 21.0, 11.0] and second.tolist() == [21.0, 12.0]
    assert inner.seen == [("q", "a"), ("q", "bb"), ("qq", "c")]


def test_hubness_finds_the_document_every_query_ranks_high() -> None:
    """bench.hubs: a document in every query's top k is a hub (large k-occurrence, positive skewness);
    a score matrix without one has its top-k slots spread out."""
    from bench.hubs import hubness

    rng = np.random.default_rng(0)
    plain = rng.normal(size=(40, 200))
    hub = plain.copy()
    hub[:, 7] += 10  # item 7 beats everything for every query
    flat, skewed = hubness(plain, 10), hubness(hub, 10)
    assert skewed["k_occurrence"][7] == 40 and skewed["max_k_occurrence"] == 40
    assert sum(skewed["k_occurrence"]) == sum(flat["k_occurrence"]) == 400
    assert skewed["k_occurrence_skewness"] > flat["k_occurrence_skewness"] + 2
    assert skewed["top5_share_of_slots"] > flat["top5_share_of_slots"]
    assert flat["max_k_occurrence"] < 40 and flat["share_by_chance"] == 0.025


def test_the_cur_benchmark_names_the_hub_items_of_each_scorer() -> None:
    """bench.cur's hub check: the item one scorer puts in every query's top list is named, with how often
    it is a query's top 1, and the other scorer's matrix is judged on its own."""
    from bench.cur import hub_check

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(30, 100))
    cross = dense.copy()
    cross[:, 42] += 10  # the cross-encoder's hub: item 42 tops every query
    items = [f"sentence {i}" for i in range(100)]
    out = hub_check(cross, dense, items, k=10)
    hub = out["cross_encoder"]
    assert hub["most_frequent"][0] == {"item": "sentence 42", "n_10": 30}
    assert hub["max_top1_occurrence"] == 30 and hub["max_k_occurrence"] == 30
    assert "k_occurrence" not in hub  # one number per item is too long for the results file
    plain = out["bi_encoder"]
    assert plain["max_top1_occurrence"] < 30 and plain["most_frequent"][0]["n_10"] < 30
    assert hub["k_occurrence_skewness"] > plain["k_occurrence_skewness"] + 2


def test_a_given_teacher_must_be_a_finished_bi_encoder_run_on_the_same_data(tmp_path: Path) -> None:
    """bench.cross_distil --teacher: a finished bi-encoder run on the students' data set is taken with its
    report; a folder without a report, a cross-encoder run, a run on other data or other splits, and a CoSENT
    teacher without calibrated labels are refused by name."""
    import json

    from bench.cross_distil import given_teacher

    data, other = tmp_path / "stsb-en", tmp_path / "other"
    data.mkdir()
    other.mkdir()

    def run(name: str, kind: str, trained_on: Path, loss: str = "cosine", **extra: object) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        config = {"kind": kind, "loss": loss, "data": str(trained_on), **extra}
        (folder / "report.json").write_text(json.dumps({"config": config, "test_spearman": 88.0}))
        return folder

    report, path, name = given_teacher(run("bi-mpnet", "bi", data), data, "linear")
    assert report["test_spearman"] == 88.0 and path == tmp_path / "bi-mpnet" and name == "bi-mpnet"
    cosent = run("bi-cosent", "bi", data, loss="cosent")
    assert given_teacher(cosent, data, "isotonic")[2] == "bi-cosent"
    for folder, says in [
        (tmp_path / "empty", "no report.json"),
        (run("cross-run", "cross", data), "not a bi-encoder"),
        (run("bi-other", "bi", other), "not on"),
        (run("bi-cut", "bi", data, test_limit=100), "other splits"),
        (cosent, "need --calibrate isotonic"),
    ]:
        folder.mkdir(exist_ok=True)
        with pytest.raises(SystemExit, match=says):
            given_teacher(folder, data, "linear")


def test_a_finished_run_is_reused_across_a_new_setting_at_its_default(tmp_path: Path) -> None:
    """bench.training_runs.finished: a report written before a setting existed is the same configuration as
    one with that setting at its default; any other difference, or a setting that no longer exists, is not."""
    import json

    from bench.training_runs import finished
    from training.recipe import TrainConfig

    cfg = TrainConfig(kind="cross", loss="cosent", base_model="m", data=tmp_path, output=tmp_path, name="run")
    (tmp_path / "run").mkdir()
    report = tmp_path / "run" / "report.json"

    def written(config: dict) -> dict | None:
        report.write_text(json.dumps({"config": config, "test_spearman": 80.0}))
        return finished(cfg)

    now = json.loads(cfg.model_dump_json())
    older = {k: v for k, v in now.items() if k != "freeze_embeddings"}
    assert written(now) is not None and written(older) is not None
    assert written({**now, "freeze_embeddings": True}) is None
    assert written({**now, "lr": 1e-5}) is None
    assert written({**now, "retired_setting": 1}) is None


def test_a_finished_run_with_another_configuration_is_never_overwritten(tmp_path: Path) -> None:
    """bench.training_runs.train_or_reuse: a folder holding a finished run of other settings stops the
    benchmark before any training, and the run is left as it was."""
    import json

    from bench.training_runs import train_or_reuse
    from training.recipe import TrainConfig

    cfg = TrainConfig(kind="bi", loss="cosine", base_model="m", data=tmp_path, output=tmp_path, name="run")
    (tmp_path / "run").mkdir()
    report = tmp_path / "run" / "report.json"
    report.write_text(json.dumps({"config": {**json.loads(cfg.model_dump_json()), "lr": 1e-5}}))
    before = report.read_text()
    with pytest.raises(SystemExit, match="another configuration"):
        train_or_reuse(cfg)
    assert report.read_text() == before
