"""Building, publishing and opening index folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from simsearch.index import IndexLoadError
from simsearch.index.build import build_index
from simsearch.index.manifest import FORMAT_VERSION
from simsearch.index.open import check_model, open_index
from simsearch.models.bi_encoder import BiEncoder
from simsearch.models.files import model_hash
from tests.conftest import DOCS, search, write_jsonl


def test_search_equals_exact_numpy_over_encoder_vectors(built_index: Path, tiny_encoder: BiEncoder) -> None:
    index = open_index(built_index)
    queries = ["domestic animals", "weather forecast", "hot drinks"]
    docs = tiny_encoder.encode([f"{d['title']} {d['text']}".strip() for d in DOCS])
    q = tiny_encoder.encode(queries)
    sims = q @ docs.T
    results = [search(index, tiny_encoder, q, 3).hits for q in queries]
    for row, hits in zip(sims, results, strict=True):
        expected = np.argsort(-row, kind="stable")[:3]
        assert [h.id for h in hits] == [DOCS[i]["_id"] for i in expected]
        np.testing.assert_allclose([h.score for h in hits], row[expected], rtol=1e-5)
    first = results[0][0]
    source = next(d for d in DOCS if d["_id"] == first.id)
    assert (first.title, first.text, first.metadata) == (source["title"], source["text"], source.get("metadata"))


def test_manifest_describes_the_build(built_index: Path, tiny_encoder: BiEncoder) -> None:
    manifest = json.loads((built_index / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["count"] == len(DOCS)
    assert manifest["model"]["path"] == tiny_encoder.path
    assert manifest["model"]["sha256"] == model_hash(tiny_encoder.path)
    assert manifest["model"]["dimension"] == 32
    assert manifest["index"] == {
        "type": "faiss",
        "params": {"factory": "Flat"},
        "requested": "auto",
        "recall_at_10": 1.0,
        "target_recall": None,
        "target_reached": None,
        "recall_measured_on": None,  # exact: nothing to measure
    }
    lexical = {f for f in manifest["files"] if f.startswith("lexical/")}
    assert set(manifest["files"]) - lexical == {"index.faiss", "docs.sqlite", "embeddings.npy"} and lexical
    assert manifest["lexical"]["engine"] == "tantivy" and manifest["lexical"]["documents"] == len(DOCS)
    assert manifest["sequence"] == 0 and manifest["compacted_from"] is None
    assert manifest["built_at"] and manifest["docs_per_s"] > 0


def test_rebuild_swaps_atomically_and_prunes(tmp_path: Path, tiny_encoder: BiEncoder, corpus_file: Path) -> None:
    first = build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False, keep_builds=2)
    first_build = first.resolve()
    assert first.is_symlink() and first_build.name.startswith("x@")
    write_jsonl(corpus_file, DOCS[:3])
    second = build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False, keep_builds=2)
    assert second == first and second.resolve() != first_build
    assert open_index(second).manifest.count == 3
    assert first_build.is_dir()  # the previous build is kept for rollback
    build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False, keep_builds=2)
    assert not first_build.exists()  # only the newest two remain
    assert len(list(tmp_path.glob("x@*"))) == 2
    assert not list(tmp_path.glob(".tmp-*")) and not list(tmp_path.glob(".link-*"))


def test_failed_build_leaves_the_previous_index(
    tmp_path: Path, tiny_encoder: BiEncoder, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False)
    before = path.resolve()
    calls = {"n": 0}
    real_encode = tiny_encoder.encode

    def failing_encode(texts, **kw):
        calls["n"] += 1
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-encoding

    monkeypatch.setattr(tiny_encoder, "encode", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False)
    monkeypatch.setattr(tiny_encoder, "encode", real_encode)
    assert calls["n"] == 1
    assert path.resolve() == before and open_index(path).manifest.count == len(DOCS)
    assert not list(tmp_path.glob(".tmp-*"))


def test_bad_corpus_fails_before_encoding(tmp_path: Path, tiny_encoder: BiEncoder) -> None:
    from simsearch.data.corpus import CorpusError

    corpus = write_jsonl(tmp_path / "corpus.jsonl", [DOCS[0], DOCS[0]])
    with pytest.raises(CorpusError, match="line 2: duplicate id"):
        build_index(corpus, tiny_encoder, tmp_path / "idx", "x", progress=False)
    assert not (tmp_path / "idx" / "x").exists()


def test_plain_text_corpus_and_exact_backend(tmp_path: Path, tiny_encoder: BiEncoder) -> None:
    corpus = tmp_path / "docs.txt"
    corpus.write_text("alpha beta\ngamma delta\n", encoding="utf-8")
    path = build_index(corpus, tiny_encoder, tmp_path, "txt", kind="exact", progress=False)
    index = open_index(path)
    assert index.manifest.index.type == "exact" and index.manifest.source.format == "text"
    hits = search(index, tiny_encoder, "gamma delta", 2).hits
    assert hits[0].id == "2" and hits[0].score == pytest.approx(1.0, abs=1e-5)


@pytest.fixture
def index_copy(tmp_path: Path, built_index: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(built_index.resolve(), copy)
    return copy


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(IndexLoadError, match="does not exist: build it with `simsearch-build-index"):
        open_index(tmp_path / "nope")


def test_missing_manifest(index_copy: Path) -> None:
    (index_copy / "manifest.json").unlink()
    with pytest.raises(IndexLoadError, match="manifest.json is missing"):
        open_index(index_copy)


def test_manifest_of_another_format_version(index_copy: Path) -> None:
    path = index_copy / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))
    with pytest.raises(IndexLoadError, match="format_version 99; this version reads 1: rebuild"):
        open_index(index_copy)


def test_manifest_that_is_not_json(index_copy: Path) -> None:
    (index_copy / "manifest.json").write_text("{oops")
    with pytest.raises(IndexLoadError, match="not valid JSON"):
        open_index(index_copy)


@pytest.mark.parametrize("name", ["index.faiss", "docs.sqlite", "embeddings.npy"])
def test_corrupt_file_is_refused(index_copy: Path, name: str) -> None:
    path = index_copy / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexLoadError, match=f"{name} is corrupt"):
        open_index(index_copy)


def test_truncated_faiss_file_without_checksums_is_still_refused(index_copy: Path) -> None:
    path = index_copy / "index.faiss"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexLoadError, match="index.faiss cannot be read"):
        open_index(index_copy, verify=False)


def test_missing_file_is_refused(index_copy: Path) -> None:
    (index_copy / "docs.sqlite").unlink()
    with pytest.raises(IndexLoadError, match="docs.sqlite is missing"):
        open_index(index_copy)


def test_index_of_another_model_is_refused(built_index: Path, tmp_path: Path, tiny_model: str) -> None:
    import shutil

    other = tmp_path / "other-model"
    shutil.copytree(tiny_model, other)
    weights = next(other.rglob("model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    encoder = BiEncoder.load(str(other))
    with pytest.raises(IndexLoadError, match="was built with model .* but the configured model is .*other-model"):
        check_model(open_index(built_index), encoder)


def test_rollback_to_the_previous_build(tmp_path: Path, tiny_encoder: BiEncoder, corpus_file: Path) -> None:
    from training.rollback import main as rollback_main

    first = build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False).resolve()
    write_jsonl(corpus_file, DOCS[:2])
    second = build_index(corpus_file, tiny_encoder, tmp_path, "x", progress=False).resolve()
    assert rollback_main(["--name", "x", "--index-dir", str(tmp_path)]) == 0
    assert (tmp_path / "x").resolve() == first and open_index(tmp_path / "x").manifest.count == len(DOCS)
    assert second.is_dir()  # nothing is deleted by a rollback
    with pytest.raises(SystemExit):
        rollback_main(["--name", "x", "--index-dir", str(tmp_path)])  # nothing older than the first build


def test_pruning_never_deletes_a_build_in_use_or_the_rollback_target(tmp_path: Path, tiny_encoder) -> None:
    """Build A, build B, roll back to A (a service reopens A), build C: A is in use and must stay (it was
    deleted, and the next rollbacks failed); B, the rollback target from C, stays too; once A is closed,
    the next build prunes it, and rollback still works after every step."""
    from simsearch.index.build import build_index
    from simsearch.index.open import open_index
    from simsearch.index.publish import rollback

    root = tmp_path / "ix"
    corpus = write_jsonl(tmp_path / "c.jsonl", DOCS)

    def build() -> Path:
        return build_index(corpus, tiny_encoder, root, "r", progress=False).resolve()

    a, b = build(), build()
    assert rollback(root, "r") == a
    serving = open_index(root / "r")  # the service, reloaded onto A
    c = build()
    assert a.is_dir() and b.is_dir() and c.is_dir()  # A in use, B the rollback target of C, C current
    assert rollback(root, "r") == b and rollback(root, "r") == a  # every step back works
    serving.close()
    d = build()  # A is older than the rollback target now, and no longer in use: pruned
    assert not a.is_dir() and d.is_dir() and c.is_dir() and (root / "r").resolve() == d
    assert rollback(root, "r") == c
