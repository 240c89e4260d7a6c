"""Shared fixtures: a tiny model built offline once per session, small corpora, settings."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_MAX_SEQ_LENGTH = 32

DOCS = [
    {
        "_id": "d1",
        "title": "Cats",
        "text": "Cats are small domesticated carnivorous mammals.",
        "metadata": {"lang": "en"},
    },
    {"_id": "d2", "title": "Dogs", "text": "Dogs were the first species to be domesticated by humans."},
    {"_id": "d3", "title": "", "text": "The stock market fell sharply on Monday after the announcement."},
    {"_id": "d4", "title": "Rain", "text": "Heavy rain is expected across the north of the country tomorrow."},
    {"_id": "d5", "title": "Python", "text": "Python is a programming language that lets you work quickly."},
    {"_id": "d6", "title": "Coffee", "text": "Coffee is a brewed drink prepared from roasted coffee beans."},
    {"_id": "d7", "title": "Tea", "text": "Tea is an aromatic beverage prepared by pouring hot water over leaves."},
    {"_id": "d8", "title": "Football", "text": "Football is a family of team sports that involve kicking a ball."},
]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised 2-layer BERT (hidden 32) with the default model's real tokenizer, saved as a
    sentence-transformers folder: about 5 MB, thousands of sentences a second, deterministic."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from simsearch.models.files import default_bi_model

    root = tmp_path_factory.mktemp("tiny")
    hf_dir, st_dir = root / "hf", root / "st"
    tokenizer = AutoTokenizer.from_pretrained(default_bi_model())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=TINY_MAX_SEQ_LENGTH)
    model = SentenceTransformer(modules=[transformer, Pooling(32, "mean"), Normalize()], device="cpu")
    model.save(str(st_dir))
    return str(st_dir)


@pytest.fixture(scope="session")
def tiny_cross(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cross-encoder on the tiny BERT with a seeded, untrained one-logit head (deterministic scores)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-cross") / "ce"
    CrossEncoder(tiny_model, num_labels=1, max_length=TINY_MAX_SEQ_LENGTH, device="cpu").save(str(folder))
    return str(folder)


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model: str):
    from simsearch.models.bi_encoder import BiEncoder

    return BiEncoder.load(tiny_model)


def write_jsonl(path: Path, rows: list[dict] | list[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", DOCS)


@pytest.fixture(scope="session")
def built_index(tmp_path_factory: pytest.TempPathFactory, tiny_encoder) -> Path:
    """A published index of DOCS built with the tiny model (shared, read-only)."""
    from simsearch.index.build import build_index

    root = tmp_path_factory.mktemp("indexes")
    corpus = write_jsonl(root / "corpus.jsonl", DOCS)
    return build_index(corpus, tiny_encoder, root, "tiny", progress=False)


@pytest.fixture
def settings_for(tiny_model: str, built_index: Path):
    """Settings that point at the tiny model and index, with overrides."""
    from simsearch.settings import Settings

    def make(**overrides) -> Settings:
        values = {"bi_model": tiny_model, "index_dir": built_index.parent, "index_name": built_index.name}
        return Settings(**{**values, **overrides})

    return make


def search(index, encoder, query: str, k: int = 3, mode: str = "dense", cross=None, k_r: int = 100):
    """Hits of the core's search pipeline over an open index, with the models called inline."""
    from simsearch.search import DirectModels, IndexView, SearchParams, SearchPipeline, run_sync

    view = IndexView(index.name, index.ann, index.store, index.cur)
    params = SearchParams(k=k, mode=mode, k_r=k_r)  # type: ignore[arg-type]
    return run_sync(SearchPipeline().search(view, DirectModels(encoder, cross), query, params))


@pytest.fixture(scope="session")
def cur_index(tmp_path_factory: pytest.TempPathFactory, tiny_model: str, tiny_cross: str) -> Path:
    """A copy of the tiny index with CUR arrays fitted by the job (anchor queries sampled from documents)."""
    from training.build_index import main as build
    from training.fit_cur import main as fit

    root = tmp_path_factory.mktemp("cur-indexes")
    corpus = write_jsonl(root / "corpus.jsonl", DOCS)
    assert (
        build(
            ["--corpus", str(corpus), "--name", "c", "--index-dir", str(root), "--model", tiny_model, "--no-progress"]
        )
        == 0
    )
    assert (
        fit(
            [
                "--index",
                "c",
                "--index-dir",
                str(root),
                "--cross",
                tiny_cross,
                "--k-q",
                "6",
                "--k-i",
                "3",
                "--selection",
                "kmeans",
                "--work-dir",
                str(root / "work"),
            ]
        )
        == 0
    )
    return root / "c"
