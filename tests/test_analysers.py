"""Analysers as a property of the collection: Chinese words found inside Chinese text (the english analyser
found nothing), English words keep the English treatment inside Chinese text, a language-neutral one, query
text that is data in every analyser, the same lexical hits on both backends, and the warnings a collection
gives when its model or analyser is not made for its documents' script."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from simsearch.api.spec import CollectionSpec
from simsearch.collection.manager import EmbeddedStore, MilvusStore
from simsearch.data.corpus import Document
from simsearch.index.manifest import ModelInfo
from simsearch.text.analysers import analyser, cjk_share
from tests.test_collections import DIM, ENC, search_ids

DOCS = [
    Document(id="lol", text="英雄联盟怎么玩，新手入门攻略"),
    Document(id="lol2", text="请问英雄联盟的高清图在哪里下载？"),
    Document(id="pic", text="这张高清图很好看"),
    Document(id="weather", text="明天北京会下雨吗"),
    Document(id="shoes", text="这双running shoes很舒服，跑步专用"),
    Document(id="en", text="Cats are running across the garden"),
    Document(id="trad", text="英雄聯盟比賽今晚開始"),
]
HOSTILE = [
    "，。！？「」",
    "🎮🎮🎮",
    "的了吗",
    '"英雄" AND (联盟) OR *',
    "英雄聯盟",
    "   ",
    "ｆｕｌｌ　ｗｉｄｔｈ",
    "\u200b",
]
MODEL = ModelInfo(name="default", path="hash", sha256=ENC.sha256, dimension=DIM, max_seq_length=64)


def collection(store: Any, name: str, analyser_name: str) -> Any:
    store.create(name, CollectionSpec(analyser=analyser_name), MODEL)  # type: ignore[arg-type]
    c = store.open(name, writable=True)
    c.upsert(DOCS, ENC.encode([d.content() for d in DOCS]))
    return c


def test_chinese_words_are_found_inside_chinese_text(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "ix")
    english, chinese = collection(store, "en", "english"), collection(store, "zh", "chinese")
    assert search_ids(english.view(), "lexical", "英雄联盟", 10) == []  # a clause is one token: nothing matches
    assert set(search_ids(chinese.view(), "lexical", "英雄联盟", 10)[:2]) == {"lol", "lol2"}
    assert search_ids(chinese.view(), "lexical", "高清图", 10)[:2] in (["lol2", "pic"], ["pic", "lol2"])
    assert "shoes" in search_ids(chinese.view(), "lexical", "run", 10)  # English inside Chinese: stemmed
    assert "en" in search_ids(chinese.view(), "lexical", "run", 10)
    assert "trad" in search_ids(chinese.view(), "lexical", "英雄聯盟", 10)  # traditional characters: as written
    standard = collection(store, "std", "standard")
    assert "lol" in search_ids(standard.view(), "lexical", "英雄", 10)  # characters alone
    assert "en" not in search_ids(standard.view(), "lexical", "run", 10)  # no stemming
    for c in (english, chinese, standard):
        for query in HOSTILE:
            assert isinstance(search_ids(c.view(), "lexical", query, 10), list), (c.name, query)
        c.close()


def test_the_analyser_terms() -> None:
    zh = analyser("chinese")
    assert "英雄" in zh.prepare("英雄联盟").split() and "盟" in zh.prepare("英雄联盟").split()
    assert zh.prepare("plain English text") == "plain English text"
    assert cjk_share("英雄联盟 league") == pytest.approx(4 / 10) and cjk_share("") == 0.0


@pytest.fixture(scope="module")
def milvus_client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from pymilvus import MilvusClient

    client = MilvusClient(str(tmp_path_factory.mktemp("milvus-zh") / "m.db"))
    yield client
    client.close()


@pytest.mark.parametrize("analyser_name", ["chinese", "standard"])
def test_both_backends_give_the_same_lexical_hits(tmp_path: Path, milvus_client: Any, analyser_name: str) -> None:
    embedded = collection(EmbeddedStore(tmp_path / "ix"), "c", analyser_name)
    milvus = collection(MilvusStore(milvus_client, ""), f"c{uuid.uuid4().hex[:6]}", analyser_name)
    for query in ["英雄联盟", "高清图", "run", "下雨", *HOSTILE]:
        a, b = embedded.view(), milvus.view()
        got_a, got_b = a.lexical(query, 10), b.lexical(query, 10)
        assert [d.id for d in a.documents([k for k, _ in got_a])] == [
            d.id for d in b.documents([k for k, _ in got_b])
        ], query
        assert [s for _, s in got_b] == pytest.approx([s for _, s in got_a], rel=1e-3), query
    embedded.close()


def test_a_wrong_model_or_analyser_is_said_with_the_share(tmp_path: Path, built_index: Path, settings_for: Any) -> None:
    import shutil

    from fastapi.testclient import TestClient

    from service.app import create_app
    from simsearch.client import Client

    root = tmp_path / "indexes"
    shutil.copytree(built_index.parent, root, symlinks=True)
    models = {
        "multi": {"path": settings_for().bi_model, "languages": ["*"]},
        "en-only": {"path": settings_for().bi_model, "languages": ["en"]},
    }
    with TestClient(create_app(settings_for(index_dir=root, anonymous_writes=True, models=models))) as http:
        c = Client(http=http)
        rows = [{"id": d.id, "text": d.text} for d in DOCS]
        c.create_collection("wrong", model="en-only")
        c.upsert("wrong", rows)
        warnings = c.get_collection("wrong").warnings
        assert any(
            "5 of 7 documents (71.4 %) are mostly Chinese" in w and "'en-only' is made for en" in w for w in warnings
        )
        assert any("analyser is english" in w for w in warnings)
        c.create_collection("right", model="multi", analyser="chinese")
        c.upsert("right", rows)
        assert c.get_collection("right").warnings == []
