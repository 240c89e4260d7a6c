"""ONNX Runtime backends: the exported graphs compute what torch computes; int8 stays close."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.cross_encoder import CrossScorer
from simsearch.models.files import model_hash
from simsearch.search import SearchParams
from simsearch.serving.engine import Engine
from simsearch.serving.runtime import Threads, load_runtime
from simsearch.settings import Settings
from tests.conftest import DOCS, search

pytestmark = pytest.mark.slow  # exports models to ONNX

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


def test_a_model_retrained_into_its_folder_is_exported_again(models: tuple[str, str], tmp_path: Path) -> None:
    """Exports beside other weights (a training run saved into the same folder) are never served: int8,
    which has no torch check at load, would otherwise score with the old model."""
    import torch
    from sentence_transformers import CrossEncoder

    from simsearch.models.onnx import exported_from

    folder = tmp_path / "cross"
    shutil.copytree(models[1], folder, ignore=shutil.ignore_patterns("onnx"))
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3]), (TEXTS[1], TEXTS[2])]
    old = CrossScorer.load(str(folder), backend="onnx-int8").score(pairs)
    assert exported_from(str(folder)) == model_hash(str(folder))
    # "retrain": new weights saved into the same folder, the onnx/ exports left as they were
    model = CrossEncoder(str(folder), device="cpu")
    with torch.no_grad():
        for p in model.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save(str(folder))
    assert exported_from(str(folder)) != model_hash(str(folder))
    expected = CrossScorer.load(str(folder)).score(pairs)  # torch, the new weights
    reloaded = CrossScorer.load(str(folder), backend="onnx-int8")
    assert reloaded.backend == "onnx-int8" and exported_from(str(folder)) == model_hash(str(folder))
    new = reloaded.score(pairs)
    assert np.max(np.abs(new - expected)) < np.max(np.abs(old - expected))  # the new weights, not the old
    assert np.max(np.abs(new - expected)) < 0.1 * (np.max(np.abs(expected)) + 1e-3) + 0.05


def test_unwritable_model_folder_falls_back_to_torch_with_the_export_command(
    models: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import simsearch.models.loading as loading
    from simsearch.models.onnx import ExportError

    fresh = tmp_path / "fresh"
    shutil.copytree(models[0], fresh, ignore=shutil.ignore_patterns("onnx"))

    def refuse(*args, **kwargs):
        raise ExportError(f"cannot write {fresh / 'onnx'}: read-only file system")

    monkeypatch.setattr(loading, "export", refuse)
    with caplog.at_level("WARNING", logger="simsearch.models.loading"):
        encoder = BiEncoder.load(str(fresh), backend="onnx")
    assert encoder.backend == "torch" and encoder.onnx is None and encoder.encode(TEXTS).shape == (len(TEXTS), 32)
    warnings = [r for r in caplog.records if "stays on torch" in r.getMessage()]
    assert len(warnings) == 1 and "python -m training.export_onnx" in warnings[0].getMessage()


def test_onnx_that_differs_from_torch_is_refused_with_one_warning(
    models: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import simsearch.models.loading as loading

    fresh = tmp_path / "strict"
    shutil.copytree(models[0], fresh, ignore=shutil.ignore_patterns("onnx"))
    monkeypatch.setitem(loading.TOLERANCE, "bi", 0.0)  # nothing passes a zero tolerance except bit equality
    with caplog.at_level("WARNING", logger="simsearch.models.loading"):
        encoder = BiEncoder.load(str(fresh), backend="onnx")
    check = json.loads((fresh / "onnx" / "check.json").read_text())
    if check["max_difference"] > 0:  # (an export that is bit-exact on these probes would rightly pass)
        assert encoder.backend == "torch" and not check["ok"]
        assert sum("differs from torch" in r.getMessage() for r in caplog.records) == 1


def test_two_loads_at_once_export_once(
    models: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import simsearch.models.loading as loading

    fresh = tmp_path / "race"
    shutil.copytree(models[0], fresh, ignore=shutil.ignore_patterns("onnx"))
    real, calls = loading.export, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loading, "export", counted)
    loaded: list[BiEncoder] = []
    threads = [
        threading.Thread(target=lambda: loaded.append(BiEncoder.load(str(fresh), backend="onnx"))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(e.onnx is not None for e in loaded)
    check = json.loads((fresh / "onnx" / "check.json").read_text())
    assert check["ok"] and check["max_difference"] <= check["tolerance"] == 1e-4


def test_a_session_per_thread_count_gives_the_same_numbers(models: tuple[str, str]) -> None:
    bi, cross = models
    encoder = BiEncoder.load(bi, backend="onnx")
    assert encoder.onnx is not None
    np.testing.assert_allclose(encoder.encode(TEXTS, threads=1), encoder.encode(TEXTS), atol=1e-6)
    one = encoder.onnx.sessions[1]
    encoder.encode(TEXTS, threads=1)
    assert set(encoder.onnx.sessions) == {None, 1} and encoder.onnx.sessions[1] is one  # made once
    scorer = CrossScorer.load(cross, backend="onnx")
    pairs = [(TEXTS[0], TEXTS[1]), (TEXTS[2], TEXTS[3])]
    np.testing.assert_allclose(scorer.score(pairs, threads=1), scorer.score(pairs), atol=1e-6)


def test_engine_streams_on_onnx_give_the_hits_of_sequential_search(models: tuple[str, str], built_index: Path) -> None:
    """Two one-thread batches at once share an ONNX session: every request still gets its own hits."""
    bi, _ = models  # the same weights as the tiny model the index was built with (the hash ignores onnx/)
    settings = Settings(
        bi_model=bi,
        backend="onnx",
        torch_threads=2,
        index_dir=built_index.parent,
        index_name=built_index.name,
    )
    runtime = load_runtime(settings)
    assert runtime.threads == Threads(alone=2, shared=1, streams=2)
    queries = [f"{d['title']} {w}" for d in DOCS for w in ("cats", "markets", "weather", "tea")]
    expected = [[(h.id, round(h.score, 5)) for h in search(runtime.index, runtime.encoder, q, 3).hits] for q in queries]

    async def serve() -> tuple[list[list[tuple[str, float]]], Engine]:
        engine = await Engine.around(runtime)
        try:
            col = engine.get(None)
            outcomes = await asyncio.gather(*(col.search(q, SearchParams(k=3)) for q in queries))
            return [[(h.id, round(h.score, 5)) for h in o.result.hits] for o in outcomes], engine
        finally:
            await engine.stop()

    got, engine = asyncio.run(serve())
    assert got == expected
    bi = engine.pool.batchers[runtime.bi.name]
    assert 0 < bi.batches < len(queries) and bi.alone_batches < bi.batches


def test_the_backend_gate_passes_a_good_export_and_refuses_a_broken_one(
    models: tuple[str, str], tmp_path: Path, built_index: Path
) -> None:
    """training.check_backend measures the candidate against torch on the collection's text and records it;
    an int8 export of other weights (deliberately broken) is refused (exit 1) and recorded as failed."""
    from simsearch.index.manifest import Manifest
    from training.check_backend import main as check

    bi = str(tmp_path / "bi")  # a private copy: its export is broken below
    shutil.copytree(models[0], bi)
    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    args = ["--name", built_index.name, "--index-dir", str(root), "--queries", "8"]
    env_bi = {"SIMSEARCH_BI_MODEL": bi}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env_bi.items():
            mp.setenv(k, v)
        assert check([*args, "--backend", "onnx-int8"]) == 0
        good = Manifest.read((root / built_index.name).resolve()).backend_checks["onnx-int8"]
        assert good.passed and good.mean_cosine >= 0.99 and good.recall_at_10 >= 0.95 and good.documents == len(DOCS)
        # break the int8 export: another model's weights under its name (the hash of the folder is unchanged)
        import torch
        from sentence_transformers import SentenceTransformer

        from simsearch.models.onnx import export, onnx_path

        other = tmp_path / "other"
        shutil.copytree(bi, other)
        torch.manual_seed(7)
        model = SentenceTransformer(str(other))
        for p in model.parameters():
            p.data.normal_(0, 0.5)
        export(model, str(other), "bi")
        shutil.copy(onnx_path(str(other), "onnx-int8"), onnx_path(bi, "onnx-int8"))
        assert check([*args, "--backend", "onnx-int8"]) == 1
        broken = Manifest.read((root / built_index.name).resolve()).backend_checks["onnx-int8"]
        assert not broken.passed and broken.mean_cosine < 0.9


def test_an_index_built_on_one_backend_serves_on_another(models: tuple[str, str], tmp_path: Path) -> None:
    """The weights' hash ignores the exports: a build encoded on torch opens on ONNX int8 (the vectors are
    the same model's, within the gate's tolerance), and its manifest says which backend encoded it."""
    from simsearch.index.build import build_index
    from tests.conftest import write_jsonl

    bi, _ = models
    torch_model = BiEncoder.load(bi, backend="torch")
    path = build_index(write_jsonl(tmp_path / "c.jsonl", DOCS), torch_model, tmp_path / "ix", "b", progress=False)
    settings = Settings(bi_model=bi, backend="onnx-int8", index_dir=tmp_path / "ix", index_name="b")
    rt = load_runtime(settings)
    assert rt.encoder.backend == "onnx-int8" and rt.index.manifest.model.backend == "torch"
    exact = f"{DOCS[0]['title']} {DOCS[0]['text']}"  # a document's own content: itself, whichever backend
    hits = search(rt.index, rt.encoder, exact, 1).hits
    assert hits[0].id == DOCS[0]["_id"] and hits[0].score > 0.98
    rt.close()
    assert path.exists()


def test_the_install_step_exports_so_that_a_read_only_start_exports_nothing(
    tiny_model: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """training.export_onnx (what `make install` and the image build run) writes both exports and the torch
    check; a start on a read-only folder afterwards serves ONNX without exporting or checking again."""
    from training import export_onnx

    folder = tmp_path / "bi"
    shutil.copytree(tiny_model, folder)
    assert export_onnx.main(["--model", str(folder)]) == 0
    record = json.loads((folder / "onnx" / "check.json").read_text())
    assert record["ok"] and record["kind"] == "bi"
    stamps = {p.name: p.stat().st_mtime_ns for p in (folder / "onnx").iterdir()}
    (folder / "onnx").chmod(0o555)
    try:
        with caplog.at_level("WARNING"):
            for backend in ("onnx", "onnx-int8"):
                assert BiEncoder.load(str(folder), backend=backend).onnx is not None  # type: ignore[arg-type]
        assert not [r for r in caplog.records if "export" in r.getMessage() or "torch" in r.getMessage()]
        assert {p.name: p.stat().st_mtime_ns for p in (folder / "onnx").iterdir()} == stamps
    finally:
        (folder / "onnx").chmod(0o755)


def test_batches_by_tokens_hold_the_budget_and_the_batch_size_and_keep_the_input_order() -> None:
    from simsearch.models.onnx import run_batched

    lengths = [300, 5, 64, 64, 7, 256, 9, 120, *([6] * 70)]
    seen: list[list[int]] = []

    def runner(batch: list[int], threads: int | None) -> np.ndarray:
        seen.append(batch)
        return np.array([[float(i)] for i in batch])

    out = run_batched(runner, lambda items: items, list(range(len(lengths))), 32, None, lengths, 512)
    assert out[:, 0].tolist() == list(range(len(lengths)))  # every item back in its own row
    assert sorted(i for b in seen for i in b) == list(range(len(lengths)))
    for batch in seen:
        assert len(batch) <= 32  # the batch size caps short texts (800 of them in one batch was 2x slower)
        assert len(batch) == 1 or max(lengths[i] for i in batch) * len(batch) <= 512  # padded tokens
    assert [0] in seen  # a text over half the budget goes alone
    assert max(len(b) for b in seen) == 32
