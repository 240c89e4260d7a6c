"""Corpus encoding on Ray Data (training.encode_ray) against the single-process build: the same vectors
with one actor and with two, into an embedded build and into Milvus; and a run killed with SIGKILL that,
started again, encodes only the batches it had not written and ends with the same result."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simsearch.data.corpus import iter_documents
from simsearch.index import layout
from simsearch.index.build import build_index
from simsearch.index.open import open_index
from tests.conftest import write_jsonl
from tests.server import ROOT
from training.encode_ray import EncodeConfig, run

pytestmark = pytest.mark.slow
WORDS = [
    *("cats", "dogs", "tea", "coffee", "rain", "sun", "market", "stock"),
    *("python", "code", "ball", "goal", "river", "mountain", "bread", "cheese"),
]
N, KILL_BATCH = 600, 25  # the kill test: 24 batches, three to a window
BATCHES = -(-N // KILL_BATCH)


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray of two CPUs for the module (jobs run in-process join it; subprocesses by address)."""
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(7)
    rows = [
        {
            "_id": f"d{i}",
            "title": rng.choice(WORDS) if i % 3 else "",
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30))),
            "metadata": {"i": i},
        }
        for i in range(N)
    ]
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", rows)


@pytest.fixture(scope="module")
def reference(corpus: Path, tiny_encoder, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """The single-process build's vectors (batches of 256, the build's chunk)."""
    path = build_index(corpus, tiny_encoder, tmp_path_factory.mktemp("ref"), "ref", progress=False)
    return np.load(path / layout.EMBEDDINGS_FILE, allow_pickle=False)


def config(corpus: Path, model: str, tmp: Path, **changes: Any) -> EncodeConfig:
    values = {"corpus": corpus, "name": "r", "model": model, "batch_size": 256, "window": 4, "progress": False}
    return EncodeConfig(**{**values, "work_dir": tmp / "work", **changes})


@pytest.mark.parametrize("actors", [1, 2])
def test_ray_build_equals_the_single_process_build(
    ray_address: str, corpus: Path, tiny_model: str, reference: np.ndarray, tmp_path: Path, actors: int
) -> None:
    report = run(config(corpus, tiny_model, tmp_path, actors=actors), (tmp_path / "ix", {}))
    index = open_index(tmp_path / "ix" / "r")
    np.testing.assert_allclose(np.load(index.path / layout.EMBEDDINGS_FILE), reference, atol=1e-6)
    assert [d.id for d in index.store.get(list(range(len(reference))))] == [d.id for d in iter_documents(corpus)]
    assert index.manifest.model.path == tiny_model and index.manifest.lexical is not None
    assert report["batches_encoded"] == 3 and report["actors"] == actors  # 256 + 256 + 88
    assert not Path(report["work"]).exists()  # done: the progress record is gone
    index.close()


def milvus_vectors(uri: str, name: str) -> dict[str, np.ndarray]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    try:
        rows = client.query(name, filter="", output_fields=["vector"], limit=16_384)
        return {bytes.fromhex(r["id"]).decode(): np.asarray(r["vector"], np.float32) for r in rows}
    finally:
        client.close()


@pytest.mark.parametrize("target", ["embedded", "milvus"])
def test_a_killed_run_resumes_where_it_stopped_and_ends_the_same(
    ray_address: str, corpus: Path, tiny_model: str, reference: np.ndarray, tmp_path: Path, target: str
) -> None:
    work, uri = tmp_path / "work", str(tmp_path / "milvus.db")
    args = ["--corpus", str(corpus), "--name", "r", "--model", tiny_model, "--index-dir", str(tmp_path / "ix")]
    args += [
        "--batch-size",
        str(KILL_BATCH),
        "--window",
        "3",
        "--address",
        ray_address,
        "--work-dir",
        str(work),
        "--no-progress",
    ]
    if target == "milvus":
        args += ["--target", "milvus", "--uri", uri, "--collection", "r"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # 1. a run on the cluster, killed (the driver and its milvus-lite server) once the first window is written
    job = subprocess.Popen(
        [sys.executable, "-m", "training.encode_ray", *args],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(len(p.read_text().split()) >= 3 for p in work.glob("r-*/done.log")):
            assert job.poll() is None, job.stderr.read().decode()[-2000:] if job.stderr else ""
            assert time.monotonic() < deadline, "the job wrote no batch in time"
            time.sleep(0.05)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
    assert job.returncode == -signal.SIGKILL  # killed, not finished
    done_before = len({line for p in work.glob("r-*/done.log") for line in p.read_text().split()})
    assert 3 <= done_before < BATCHES
    # 2. started again with the same options (one window now: the window is not part of the result)
    cfg = config(corpus, tiny_model, tmp_path, batch_size=KILL_BATCH, window=64, target=target)
    if target == "embedded":
        report = run(cfg, (tmp_path / "ix", {}))
        index = open_index(tmp_path / "ix" / "r")
        got = np.load(index.path / layout.EMBEDDINGS_FILE)
        index.close()
    else:
        from pymilvus import MilvusClient

        from simsearch.collection.milvus import MilvusCollection

        client = MilvusClient(uri)
        try:
            report = run(cfg, MilvusCollection(client, "r", uri=uri))
        finally:
            client.close()
        stored = milvus_vectors(uri, "r")
        got = np.stack([stored[d.id] for d in iter_documents(corpus)])
        assert len(stored) == len(reference)
    assert report["batches_resumed"] >= done_before and report["batches_encoded"] == BATCHES - report["batches_resumed"]
    np.testing.assert_allclose(got, reference, atol=1e-5)  # batches of 25 here, of 256 in the reference
