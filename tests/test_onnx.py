"""ONNX Runtime backends: the exported graphs compute what torch computes; int8 stays close."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from simsearch.cross import CrossScorer
from simsearch.encoders import BiEncoder, ModelLoadError
from simsearch.model_files import model_hash

TEXTS = ["a cat sat on the mat", "stock prices fell sharply", "rain is expected tomorrow in the north", "tea"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, tiny_cross: str) -> tuple[str, str]:
    """Copies, so the exports do not touch the shared tiny models."""
    root = tmp_path_factory.mktemp("onnx")
    shutil.copytree(tiny_model, root / "bi")
    shutil.copytree(tiny_cross, root / "cross")
    return str(root / "bi"), str(root / "cross")


def test_bi_encoder_onnx_matches_torch(models: tuple[str, str]) -> None:
    bi, _ = models
    before = model_hash(bi)
    torch_vectors = BiEncoder.load(bi).encode(TEXTS)
    onnx = BiEncoder.load(bi, backend="onnx")
    assert (Path(bi) / "onnx" / "model.onnx").is_file() and (Path(bi) / "onnx" / "model_qint8.onnx").is_file()
    np.testing.assert_allclose(onnx.encode(TEXTS, batch_size=3), torch_vectors, atol=1e-5)
    int8 = BiEncoder.load(bi, backend="onnx-int8").encode(TEXTS)
    assert np.all(np.sum(int8 * torch_vectors, axis=1) > 0.95)
    assert model_hash(bi) == before  # the export is the same model: indexes built with torch still match


def test_cross_encoder_onnx_matches_torch(models: tuple[str, str]) -> None:
    _, cross = models
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[0], TEXTS[0])]
    expected = CrossScorer.load(cross).score(pairs)
    np.testing.assert_allclose(CrossScorer.load(cross, backend="onnx").score(pairs), expected, atol=1e-4)
    int8 = CrossScorer.load(cross, backend="onnx-int8").score(pairs)
    assert np.max(np.abs(int8 - expected)) < 0.1 * (np.max(np.abs(expected)) + 1e-3) + 0.05


def test_unwritable_model_folder_names_the_export_command(
    models: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import simsearch.encoders as encoders
    from simsearch.onnx_backend import ExportError

    fresh = tmp_path / "fresh"
    shutil.copytree(models[0], fresh, ignore=shutil.ignore_patterns("onnx"))

    def refuse(*args, **kwargs):
        raise ExportError(f"cannot write {fresh / 'onnx'}: read-only file system")

    monkeypatch.setattr(encoders, "export", refuse)
    with pytest.raises(ModelLoadError, match=r"read-only file system: export it .* `python -m training.export_onnx"):
        BiEncoder.load(str(fresh), backend="onnx")
