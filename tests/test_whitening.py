"""The whitening estimator against scikit-learn's PCA, its identities, degenerate input, and the saved model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError

from simsearch.whitening import Whitening, read_whitening, save_whitened


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(400, 12)) @ rng.normal(size=(12, 12)) + rng.normal(size=12)


def test_bert_whitening_equals_pca_whiten_up_to_column_signs(X: np.ndarray) -> None:
    ours = Whitening(beta=1, gamma=1).fit(X).transform(X, normalize=False)
    pca = PCA(whiten=True).fit(X).transform(X)  # both use the unbiased (n - 1) covariance
    signs = np.sign(np.sum(ours * pca, axis=0))
    np.testing.assert_allclose(ours, pca * signs, atol=1e-4)


def test_transformed_training_data_has_identity_covariance(X: np.ndarray) -> None:
    Y = Whitening(beta=1, gamma=1).fit(X).transform(X, normalize=False).astype(np.float64)
    np.testing.assert_allclose(np.cov(Y.T), np.eye(X.shape[1]), atol=1e-5)
    np.testing.assert_allclose(Y.mean(axis=0), 0.0, atol=1e-5)
    Yk = Whitening(beta=1, gamma=1, n_components=5).fit(X).transform(X, normalize=False).astype(np.float64)
    np.testing.assert_allclose(np.cov(Yk.T), np.eye(5), atol=1e-5)


def test_pure_rotation_keeps_every_cosine(X: np.ndarray) -> None:
    Y = Whitening(beta=0, gamma=0).fit(X).transform(X)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(Y @ Y.T, Xn @ Xn.T, atol=1e-5)
    assert np.allclose(np.linalg.norm(Y, axis=1), 1.0, atol=1e-6)


def test_streaming_fit_equals_one_batch(X: np.ndarray) -> None:
    whole = Whitening(beta=1, gamma=1, n_components=6).fit(X)
    streamed = Whitening(beta=1, gamma=1, n_components=6)
    for start in range(0, len(X), 37):
        streamed.partial_fit(X[start : start + 37])
    np.testing.assert_allclose(streamed.mean_, whole.mean_, atol=1e-12)
    np.testing.assert_allclose(streamed.covariance_, whole.covariance_, atol=1e-10)
    np.testing.assert_allclose(streamed.transform(X), whole.transform(X), atol=1e-6)
    assert streamed.n_samples_seen_ == len(X)


def test_streaming_batches_smaller_than_the_dimension(X: np.ndarray) -> None:
    """Batches of 5 vectors of dimension 12 with gamma > 0: no batch alone spans the space, so the first ones
    leave the estimator unfitted instead of raising, and the end result equals one fit over everything."""
    assert X.shape[1] == 12
    whole = Whitening(beta=1, gamma=1).fit(X)
    streamed = Whitening(beta=1, gamma=1)
    streamed.partial_fit(X[:5])
    with pytest.raises(NotFittedError):  # 5 vectors span at most 4 centred directions of 12
        streamed.transform(X)
    for start in range(5, len(X), 5):
        streamed.partial_fit(X[start : start + 5])
    np.testing.assert_allclose(streamed.covariance_, whole.covariance_, atol=1e-10)
    np.testing.assert_allclose(streamed.transform(X), whole.transform(X), atol=1e-6)


def test_estimator_contract(X: np.ndarray) -> None:
    w = Whitening(beta=0.5, gamma=1, n_components=3)
    assert w.get_params() == {"beta": 0.5, "gamma": 1, "n_components": 3, "rank_tol": 1e-9}
    with pytest.raises(NotFittedError):
        w.transform(X)
    assert w.fit(X) is w and w.weight_.shape == (12, 3)
    np.testing.assert_allclose(w.bias_, -0.5 * w.mean_ @ w.weight_)
    with pytest.raises(ValueError, match="X has 5 features; the whitening was fitted on 12"):
        w.transform(X[:, :5])
    with pytest.raises(ValueError, match="n_components must be between 1 and 12"):
        Whitening(n_components=13).fit(X)


def test_fewer_sentences_than_dimensions(X: np.ndarray) -> None:
    few = X[:5]  # 5 vectors span at most 4 directions around their mean
    with pytest.raises(ValueError, match="only 4 directions have variance .* at most 4 components, not 12"):
        Whitening(beta=1, gamma=1).fit(few)
    assert Whitening(beta=1, gamma=1, n_components=4).fit(few).transform(few).shape == (5, 4)
    rotated = Whitening(beta=0, gamma=0).fit(few).transform(few)  # a rotation needs no inverse
    assert rotated.shape == (5, 12)


def test_constant_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="all 10 vectors are identical"):
        Whitening(beta=0, gamma=0).fit(np.ones((10, 4)))
    with pytest.raises(ValueError, match="1 vector has no covariance"):
        Whitening().fit(np.ones((1, 4)))
    with pytest.raises(NotFittedError):  # streamed, one vector leaves it unfitted until more arrive
        Whitening().partial_fit(np.ones((1, 4))).transform(np.ones((1, 4)))


def test_saved_model_reloads_and_encodes_whitened(tiny_model: str, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(tiny_model, device="cpu")
    sentences = [f"sentence number {i} about {w}" for i, w in enumerate(["cats", "dogs", "rain", "tea"] * 20)]
    vectors = model.encode(sentences)
    whitening = Whitening(beta=1, gamma=1, n_components=16).fit(vectors)
    folder = save_whitened(model, whitening, tmp_path / "w", {"fitted_on_source": "toy"})
    reloaded = SentenceTransformer(str(folder), device="cpu")
    assert reloaded.get_embedding_dimension() == 16
    np.testing.assert_allclose(reloaded.encode(sentences), whitening.transform(vectors), atol=1e-5)
    assert read_whitening(str(folder)) == {
        "beta": 1,
        "gamma": 1,
        "k": 16,
        "input_dim": 32,
        "fitted_on": 80,
        "fitted_on_source": "toy",
    }


def test_fit_whitening_job_grid_then_index_and_service(tiny_model: str, tmp_path: Path) -> None:
    import json

    from fastapi.testclient import TestClient
    from sentence_transformers import SentenceTransformer

    from service.app import create_app
    from simsearch.index.build import build_index
    from simsearch.index.open import open_index
    from simsearch.models.bi_encoder import BiEncoder
    from simsearch.settings import Settings
    from tests.conftest import DOCS, write_jsonl
    from training.fit_whitening import main

    words = ["cats", "dogs", "rain", "tea", "cars", "music", "bread", "snow"]
    lines = [
        f"a note on {w} number {i}\tanother line on {words[(i * 3) % 8]} {i}\t{i % 6}" for i, w in enumerate(words * 8)
    ]
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "whitened"
    assert (
        main(
            [
                "--model",
                tiny_model,
                "--pairs",
                str(tmp_path / "pairs.tsv"),
                "--grid",
                "--val-pairs",
                str(tmp_path / "pairs.tsv"),
                "--output",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    assert {(r["beta"], r["gamma"]) for r in report["rows"]} == {(1.0, 1.0), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0)}
    assert report["chosen"]["score"] >= report["best_score"] - report["tolerance"]
    assert isinstance(report["baseline_score"], float) and report["sentences"] == 128

    encoder = BiEncoder.load(str(out))
    assert encoder.whitening is not None and encoder.whitening["k"] == report["chosen"]["k"]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", DOCS)
    path = build_index(corpus, encoder, tmp_path / "indexes", "w", progress=False)
    assert open_index(path).manifest.model.whitening == encoder.whitening

    settings = Settings(bi_model=str(out), index_dir=tmp_path / "indexes", index_name="w")
    with TestClient(create_app(settings)) as client:
        body = client.post("/similarity", json={"pairs": [["a note on cats", "rain and snow"]]}).json()
        hits = client.post("/search", json={"query": "tea", "k": 3}).json()["hits"]
    v = SentenceTransformer(str(out), device="cpu").encode(["a note on cats", "rain and snow"])
    assert body["scores"][0] == pytest.approx(float(v[0] @ v[1]), abs=1e-5)
    assert len(hits) == 3


def test_fit_whitening_job_needs_sentences_and_validation(tiny_model: str, tmp_path: Path, capsys) -> None:
    from training.fit_whitening import main

    with pytest.raises(SystemExit):
        main(["--model", tiny_model, "--output", str(tmp_path / "o")])
    assert "give --corpus and/or --pairs" in capsys.readouterr().err
    (tmp_path / "p.tsv").write_text("a\tb\t1\nc\td\t0\ne\tf\t1\n")
    with pytest.raises(SystemExit):
        main(["--model", tiny_model, "--pairs", str(tmp_path / "p.tsv"), "--grid", "--output", str(tmp_path / "o")])
    assert "--grid needs a validation set" in capsys.readouterr().err
